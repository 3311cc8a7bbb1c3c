//! The slice of JQL the simulator understands: clauses joined by `AND`, on `labels`,
//! `project`, `key`, `status` and `statusCategory`, with `=`, `!=`, `in (...)`, `not in (...)`,
//! then an optional `ORDER BY created|key [ASC|DESC]`.
//!
//! Anything outside that slice is answered the way Jira answers a query it cannot run (400 with
//! `errorMessages`), never silently widened: a simulator that matched more than asked would
//! hide dedup bugs.

#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    Labels,
    Project,
    Key,
    Status,
    StatusCategory,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub field: Field,
    pub negated: bool,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Order {
    Created,
    Key,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub clauses: Vec<Clause>,
    pub order: Option<(Order, bool)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    while let Some(&c) = it.peek() {
        match c {
            c if c.is_whitespace() => {
                it.next();
            }
            '(' => {
                it.next();
                out.push(Tok::LParen);
            }
            ')' => {
                it.next();
                out.push(Tok::RParen);
            }
            ',' => {
                it.next();
                out.push(Tok::Comma);
            }
            '=' => {
                it.next();
                out.push(Tok::Op("="));
            }
            '!' => {
                it.next();
                if it.next() != Some('=') {
                    return Err("Error in the JQL Query: the character '!' is a reserved JQL character.".into());
                }
                out.push(Tok::Op("!="));
            }
            '"' | '\'' => {
                let quote = c;
                it.next();
                let mut v = String::new();
                loop {
                    match it.next() {
                        Some('\\') => match it.next() {
                            Some(e) => v.push(e),
                            None => {
                                return Err("Error in the JQL Query: unterminated escape.".into());
                            }
                        },
                        Some(ch) if ch == quote => break,
                        Some(ch) => v.push(ch),
                        None => {
                            return Err("Error in the JQL Query: the quoted string has no closing quote.".into());
                        }
                    }
                }
                out.push(Tok::Str(v));
            }
            _ => {
                let mut w = String::new();
                while let Some(&ch) = it.peek() {
                    if ch.is_alphanumeric() || matches!(ch, '_' | '-' | '.') {
                        w.push(ch);
                        it.next();
                    } else {
                        break;
                    }
                }
                if w.is_empty() {
                    return Err(format!("Error in the JQL Query: the character '{c}' is a reserved JQL character."));
                }
                out.push(Tok::Word(w));
            }
        }
    }
    Ok(out)
}

fn field(name: &str) -> Result<Field, String> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "labels" | "label" => Field::Labels,
        "project" => Field::Project,
        "key" | "issuekey" | "issue" => Field::Key,
        "status" => Field::Status,
        "statuscategory" => Field::StatusCategory,
        _ => {
            return Err(format!("Field '{name}' does not exist or you do not have permission to view it."));
        }
    })
}

fn is_kw(t: Option<&Tok>, kw: &str) -> bool {
    matches!(t, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
}

pub fn parse(jql: &str) -> Result<Query, String> {
    let toks = lex(jql)?;
    let mut i = 0;
    let mut clauses = Vec::new();
    let mut order = None;
    while i < toks.len() {
        if is_kw(toks.get(i), "order") {
            if !is_kw(toks.get(i + 1), "by") {
                return Err("Error in the JQL Query: Expecting 'by' after 'order'.".into());
            }
            let f = match toks.get(i + 2) {
                Some(Tok::Word(w)) if w.eq_ignore_ascii_case("created") => Order::Created,
                Some(Tok::Word(w)) if w.eq_ignore_ascii_case("key") => Order::Key,
                Some(Tok::Word(w)) => {
                    return Err(format!("Field '{w}' does not exist or you do not have permission to view it."));
                }
                _ => {
                    return Err("Error in the JQL Query: Expecting a field name after 'order by'.".into());
                }
            };
            let mut desc = false;
            i += 3;
            if is_kw(toks.get(i), "desc") {
                desc = true;
                i += 1;
            } else if is_kw(toks.get(i), "asc") {
                i += 1;
            }
            order = Some((f, desc));
            if i != toks.len() {
                return Err("Error in the JQL Query: Expecting end of query after the ORDER BY clause.".into());
            }
            break;
        }
        if !clauses.is_empty() {
            if is_kw(toks.get(i), "and") {
                i += 1;
            } else if is_kw(toks.get(i), "or") {
                return Err("The simulator supports only AND between clauses.".into());
            } else {
                return Err("Error in the JQL Query: Expecting either 'OR' or 'AND' but got something else.".into());
            }
        }
        let Some(Tok::Word(name)) = toks.get(i) else {
            return Err("Error in the JQL Query: Expecting a field name.".into());
        };
        let f = field(name)?;
        i += 1;
        let (negated, list) = match toks.get(i) {
            Some(Tok::Op("=")) => (false, false),
            Some(Tok::Op("!=")) => (true, false),
            _ if is_kw(toks.get(i), "in") => (false, true),
            _ if is_kw(toks.get(i), "not") && is_kw(toks.get(i + 1), "in") => {
                i += 1;
                (true, true)
            }
            _ => {
                return Err(format!("Error in the JQL Query: Expecting an operator after the field '{name}'."));
            }
        };
        i += 1;
        let mut values = Vec::new();
        let value = |t: Option<&Tok>| match t {
            Some(Tok::Word(w)) | Some(Tok::Str(w)) => Ok(w.clone()),
            _ => Err(format!("Error in the JQL Query: Expecting a value for the field '{name}'.")),
        };
        if list {
            if toks.get(i) != Some(&Tok::LParen) {
                return Err("Error in the JQL Query: Expecting '(' after 'in'.".into());
            }
            i += 1;
            loop {
                values.push(value(toks.get(i))?);
                i += 1;
                match toks.get(i) {
                    Some(Tok::Comma) => i += 1,
                    Some(Tok::RParen) => {
                        i += 1;
                        break;
                    }
                    _ => return Err("Error in the JQL Query: Expecting ',' or ')'.".into()),
                }
            }
        } else {
            values.push(value(toks.get(i))?);
            i += 1;
        }
        clauses.push(Clause { field: f, negated, values });
    }
    if clauses.is_empty() {
        return Err("Unbounded JQL queries are not allowed here. Please add a search restriction to your query.".into());
    }
    Ok(Query { clauses, order })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_dedup_queries() {
        let q = parse(r#"labels = "floodgate-inc-1" ORDER BY created ASC"#).unwrap();
        assert_eq!(
            q.clauses[0],
            Clause { field: Field::Labels, negated: false, values: vec!["floodgate-inc-1".into()] }
        );
        assert_eq!(q.order, Some((Order::Created, false)));
        let q = parse(r#"project = SEC AND labels in ("a", b) AND statusCategory != Done"#).unwrap();
        assert_eq!(q.clauses.len(), 3);
        assert_eq!(q.clauses[1].values, ["a", "b"]);
        assert!(q.clauses[2].negated);
    }

    #[test]
    fn refuses_unbounded_and_unknown() {
        assert!(parse("order by key desc").unwrap_err().contains("Unbounded"));
        assert!(parse("").unwrap_err().contains("Unbounded"));
        assert!(parse("colour = red").unwrap_err().contains("Field 'colour' does not exist"));
        assert!(parse("labels = a OR labels = b").is_err());
        assert!(parse(r#"labels = "a"#).is_err());
    }
}
