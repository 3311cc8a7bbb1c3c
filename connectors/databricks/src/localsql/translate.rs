//! Databricks SQL (the subset documented in the `sim` module) → SQLite SQL.
//!
//! Not a full parser: the text is lexed Spark's way, grouped by brackets, and rewritten piece
//! by piece — table names, struct/map access, parameters, literals, functions, casts, interval
//! arithmetic — while the clause structure (`SELECT … FROM … WHERE … GROUP BY …`) passes
//! through, since SQLite shares it. Every select item gets an explicit Spark-style column name
//! and, where the expression tells, a Databricks type for the result manifest.
//!
//! Anything outside the subset fails the way Databricks reports errors (an error class and a
//! SQLSTATE); SQLite's own errors are mapped by the caller.

use super::functions::{TS_FMT, cast, type_nodes, unit};
use super::items::{default_name, infer, quote_ident_always, split_alias};
use super::lex::{Node, Tok, lex, tree};
use super::{DType, SqlError, canonical_timestamp, column_type, field_type, is_nested, table};
use std::collections::{HashMap, HashSet};

/// Output columns: name and type where the expression tells.
type Cols = Vec<(String, Option<DType>)>;

/// A translated statement.
#[derive(Debug, Clone)]
pub struct Translated {
    pub sql: String,
    /// Parameter names in `?N` order (`?1` is `params[0]`).
    pub params: Vec<String>,
    /// Output columns of the outermost query: name and type where known. A `*` item is named
    /// `*` (its columns come from SQLite).
    pub columns: Cols,
}

/// Translates one statement. `param_types` are the statement's parameters by name.
pub fn translate(sql: &str, param_types: &HashMap<String, DType>) -> Result<Translated, SqlError> {
    let nodes = tree(lex(sql)?)?;
    let starts_query = match nodes.first() {
        Some(Node::Tok(t)) => t.is_word("SELECT") || t.is_word("WITH"),
        Some(Node::Group('(', _)) => true,
        _ => false,
    };
    if !starts_query {
        let first = nodes.first().and_then(Node::tok).map(Tok::shown).unwrap_or_default();
        return Err(SqlError::unsupported(&format!(
            "statements other than queries (found {first:?}); it runs SELECT and WITH only"
        )));
    }
    let mut tr = Tr { param_types, params: Vec::new(), ctes: HashSet::new(), scope: HashMap::new() };
    let (pieces, cols) = tr.seq(&nodes)?;
    Ok(Translated { sql: join(&pieces), params: tr.params, columns: cols.unwrap_or_default() })
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Kind {
    Atom,
    Op,
    Kw,
}

#[derive(Debug, Clone)]
pub(super) struct Piece {
    pub(super) sql: String,
    pub(super) kind: Kind,
    pub(super) dtype: Option<DType>,
}

impl Piece {
    pub(super) fn atom(sql: impl Into<String>, dtype: Option<DType>) -> Piece {
        Piece { sql: sql.into(), kind: Kind::Atom, dtype }
    }
    fn op(sql: impl Into<String>) -> Piece {
        Piece { sql: sql.into(), kind: Kind::Op, dtype: None }
    }
    fn kw(sql: impl Into<String>) -> Piece {
        Piece { sql: sql.into(), kind: Kind::Kw, dtype: None }
    }
}

fn join(pieces: &[Piece]) -> String {
    pieces.iter().map(|p| p.sql.as_str()).collect::<Vec<_>>().join(" ")
}

/// Words that never start an expression atom (unless used as a function name).
const RESERVED: &str = concat!(
    "SELECT FROM WHERE GROUP BY HAVING ORDER LIMIT OFFSET AND OR NOT IN IS LIKE ILIKE RLIKE ",
    "REGEXP BETWEEN CASE WHEN THEN ELSE END AS ON JOIN LEFT RIGHT FULL INNER OUTER CROSS UNION ",
    "ALL DISTINCT EXCEPT INTERSECT WITH ASC DESC NULLS OVER PARTITION ROWS RANGE UNBOUNDED ",
    "PRECEDING FOLLOWING CURRENT ROW EXISTS ESCAPE SEMI ANTI INTERVAL WINDOW USING QUALIFY ",
    "LATERAL DIV MINUS FILTER",
);

/// Words that end a select list at its own nesting level.
const CLAUSE_END: &str = "FROM WHERE GROUP HAVING ORDER LIMIT UNION EXCEPT INTERSECT WINDOW QUALIFY OFFSET MINUS";

pub(super) fn is_reserved(w: &str) -> bool {
    RESERVED.split(' ').any(|r| r.eq_ignore_ascii_case(w))
}

/// Words that may precede a bracket group without being a function call.
fn not_a_function(w: &str) -> bool {
    [
        "IN", "EXISTS", "OVER", "AS", "ON", "USING", "AND", "OR", "NOT", "VALUES", "JOIN", "FROM", "WHEN", "THEN",
        "ELSE", "CASE", "BY", "WITH", "ALL", "DISTINCT", "FILTER",
    ]
    .iter()
    .any(|r| r.eq_ignore_ascii_case(w))
}

fn quote_ident(s: &str) -> String {
    let simple = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if simple && !is_reserved(s) { s.to_string() } else { format!("\"{}\"", s.replace('"', "\"\"")) }
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A string literal that spells a timestamp is stored-form, so it compares with timestamps.
pub(super) fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 16 && b[4] == b'-' && b[7] == b'-' && (b[10] == b'T' || b[10] == b' ') && b[13] == b':'
}

pub(super) fn split_commas(items: &[Node]) -> Vec<&[Node]> {
    if items.is_empty() {
        return Vec::new();
    }
    items.split(|n| n.is_punct(",")).collect()
}

pub(super) struct Tr<'a> {
    param_types: &'a HashMap<String, DType>,
    params: Vec<String>,
    ctes: HashSet<String>,
    /// Output column types of CTEs and subqueries seen so far.
    scope: HashMap<String, DType>,
}

impl Tr<'_> {
    /// Translates a sequence of nodes (a query, a clause, or an expression). Returns the pieces
    /// and, if the sequence has a SELECT at its own level, that select list's columns.
    fn seq(&mut self, nodes: &[Node]) -> Result<(Vec<Piece>, Option<Cols>), SqlError> {
        let mut out: Vec<Piece> = Vec::new();
        let mut cols = None;
        let mut expect_table = false;
        let mut in_from = false;
        let mut i = 0;
        while i < nodes.len() {
            let node = &nodes[i];
            if expect_table {
                expect_table = false;
                match node {
                    Node::Group('(', items) => {
                        let (sql, _) = self.subquery(items)?;
                        out.push(Piece::atom(format!("({sql})"), None));
                        i += 1;
                        continue;
                    }
                    Node::Tok(Tok::Word(_) | Tok::Quoted(_)) => {
                        let (sql, j) = self.table_ref(nodes, i)?;
                        out.push(Piece::atom(sql, None));
                        i = j;
                        continue;
                    }
                    other => {
                        return Err(SqlError::syntax(&other.tok().map(Tok::shown).unwrap_or_else(|| "(".into())));
                    }
                }
            }
            if let Node::Tok(Tok::Word(w)) = node {
                let upper = w.to_ascii_uppercase();
                match upper.as_str() {
                    "WITH" => {
                        i = self.with_clause(nodes, i, &mut out)?;
                        continue;
                    }
                    "SELECT" => {
                        let (text, c, j) = self.select_list(nodes, i)?;
                        out.push(Piece::kw(text));
                        if cols.is_none() {
                            cols = Some(c);
                        }
                        in_from = false;
                        i = j;
                        continue;
                    }
                    "FROM" => {
                        in_from = true;
                        expect_table = true;
                        out.push(Piece::kw("FROM"));
                        i += 1;
                        continue;
                    }
                    "JOIN" => {
                        expect_table = true;
                        out.push(Piece::kw("JOIN"));
                        i += 1;
                        continue;
                    }
                    "SEMI" | "ANTI" => return Err(SqlError::unsupported(&format!("{upper} JOIN"))),
                    "WHERE" | "GROUP" | "HAVING" | "ORDER" | "LIMIT" | "UNION" | "EXCEPT" | "INTERSECT" | "ON"
                    | "USING" | "OFFSET" => {
                        in_from = false;
                        out.push(Piece::kw(upper));
                        i += 1;
                        continue;
                    }
                    "QUALIFY" | "LATERAL" | "PIVOT" | "UNPIVOT" | "TABLESAMPLE" | "CLUSTER" | "DISTRIBUTE" | "SORT"
                    | "WINDOW" | "MINUS" => {
                        return Err(SqlError::unsupported(&upper));
                    }
                    "ALL" if out.len() >= 2 && out[out.len() - 1].sql == "BY" && out[out.len() - 2].sql == "GROUP" => {
                        return Err(SqlError::unsupported("GROUP BY ALL"));
                    }
                    "DIV" => {
                        out.push(Piece::op("/"));
                        i += 1;
                        continue;
                    }
                    "RLIKE" | "REGEXP" => {
                        out.push(Piece::op("REGEXP"));
                        i += 1;
                        continue;
                    }
                    "ILIKE" => {
                        let negated = out.last().is_some_and(|p| p.kind == Kind::Kw && p.sql == "NOT");
                        if negated {
                            out.pop();
                        }
                        let left =
                            out.pop().filter(|p| p.kind == Kind::Atom).ok_or_else(|| SqlError::syntax("ILIKE"))?;
                        let (right, j) = self.atom(nodes, i + 1)?.ok_or_else(|| SqlError::syntax("ILIKE"))?;
                        let not = if negated { "NOT " } else { "" };
                        out.push(Piece::atom(
                            format!("(lower({}) {not}LIKE lower({}))", left.sql, right.sql),
                            Some(DType::Boolean),
                        ));
                        i = j;
                        continue;
                    }
                    "IS" => {
                        let at = |k: usize, w: &str| nodes.get(i + k).is_some_and(|n| n.is_word(w));
                        if at(1, "DISTINCT") && at(2, "FROM") {
                            out.push(Piece::op("IS NOT"));
                            i += 3;
                            continue;
                        }
                        if at(1, "NOT") && at(2, "DISTINCT") && at(3, "FROM") {
                            out.push(Piece::op("IS"));
                            i += 4;
                            continue;
                        }
                        out.push(Piece::op("IS"));
                        i += 1;
                        continue;
                    }
                    "INTERVAL" => {
                        i = self.interval(nodes, i, &mut out)?;
                        continue;
                    }
                    _ => {}
                }
            }
            if in_from && node.is_punct(",") {
                expect_table = true;
                out.push(Piece::op(","));
                i += 1;
                continue;
            }
            if let Some((piece, j)) = self.atom(nodes, i)? {
                out.push(piece);
                i = j;
                continue;
            }
            match node {
                Node::Tok(Tok::Punct(p)) => {
                    let mapped = match p.as_str() {
                        "==" => "=",
                        "<=>" => "IS",
                        "&&" => "AND",
                        // Spark's `/` always divides as floating point; SQLite's divides
                        // integers as integers (`DIV` is the integer division).
                        "/" => "* 1.0 /",
                        "." | "[" | "]" | "::" => return Err(SqlError::syntax(p)),
                        other => other,
                    };
                    out.push(Piece::op(mapped));
                }
                Node::Tok(Tok::Word(w)) => out.push(Piece::kw(w.to_ascii_uppercase())),
                Node::Group(_, _) => return Err(SqlError::syntax("[")),
                Node::Tok(t) => return Err(SqlError::syntax(&t.shown())),
            }
            i += 1;
        }
        Ok((out, cols))
    }

    /// An expression: its SQL and its type when the expression tells.
    pub(super) fn expr(&mut self, nodes: &[Node]) -> Result<(String, Option<DType>), SqlError> {
        let (pieces, _) = self.seq(nodes)?;
        Ok((join(&pieces), infer(&pieces)))
    }

    fn subquery(&mut self, items: &[Node]) -> Result<(String, Cols), SqlError> {
        let (pieces, cols) = self.seq(items)?;
        let cols = cols.unwrap_or_default();
        for (name, t) in &cols {
            if let Some(t) = t {
                self.scope.insert(name.to_ascii_lowercase(), *t);
            }
        }
        Ok((join(&pieces), cols))
    }

    fn with_clause(&mut self, nodes: &[Node], start: usize, out: &mut Vec<Piece>) -> Result<usize, SqlError> {
        let mut i = start + 1;
        if nodes.get(i).is_some_and(|n| n.is_word("RECURSIVE")) {
            return Err(SqlError::unsupported("WITH RECURSIVE"));
        }
        let mut parts = Vec::new();
        loop {
            let name = match nodes.get(i).and_then(Node::tok) {
                Some(Tok::Word(w) | Tok::Quoted(w)) => w.clone(),
                other => return Err(SqlError::syntax(&other.map(Tok::shown).unwrap_or_default())),
            };
            i += 1;
            if matches!(nodes.get(i), Some(Node::Group('(', _))) {
                return Err(SqlError::unsupported("column lists on common table expressions"));
            }
            if !nodes.get(i).is_some_and(|n| n.is_word("AS")) {
                return Err(SqlError::syntax(&name));
            }
            i += 1;
            let Some(Node::Group('(', body)) = nodes.get(i) else {
                return Err(SqlError::syntax("AS"));
            };
            let (sql, _) = self.subquery(body)?;
            self.ctes.insert(name.to_ascii_lowercase());
            parts.push(format!("{} AS ({sql})", quote_ident(&name)));
            i += 1;
            if nodes.get(i).is_some_and(|n| n.is_punct(",")) {
                i += 1;
                continue;
            }
            break;
        }
        out.push(Piece::kw(format!("WITH {}", parts.join(", "))));
        Ok(i)
    }

    fn table_ref(&mut self, nodes: &[Node], start: usize) -> Result<(String, usize), SqlError> {
        let mut parts = Vec::new();
        let mut i = start;
        loop {
            match nodes.get(i).and_then(Node::tok) {
                Some(Tok::Word(w) | Tok::Quoted(w)) => parts.push(w.clone()),
                _ => return Err(SqlError::syntax(".")),
            }
            i += 1;
            if nodes.get(i).is_some_and(|n| n.is_punct(".")) {
                i += 1;
                continue;
            }
            break;
        }
        if matches!(nodes.get(i), Some(Node::Group('(', _))) {
            return Err(SqlError::unsupported(&format!("table-valued function {}", parts.join("."))));
        }
        if parts.len() == 1 && self.ctes.contains(&parts[0].to_ascii_lowercase()) {
            return Ok((quote_ident(&parts[0]), i));
        }
        match table(&parts.join(".")) {
            Some(t) => Ok((format!("\"{}\"", t.name), i)),
            None => Err(SqlError::table_not_found(&parts)),
        }
    }

    fn select_list(&mut self, nodes: &[Node], start: usize) -> Result<(String, Cols, usize), SqlError> {
        let mut i = start + 1;
        let mut head = String::from("SELECT");
        if nodes.get(i).is_some_and(|n| n.is_word("DISTINCT")) {
            head.push_str(" DISTINCT");
            i += 1;
        } else if nodes.get(i).is_some_and(|n| n.is_word("ALL")) {
            i += 1;
        }
        let end = (i..nodes.len()).find(|&k| CLAUSE_END.split(' ').any(|w| nodes[k].is_word(w))).unwrap_or(nodes.len());
        let mut items_sql = Vec::new();
        let mut cols = Vec::new();
        for item in split_commas(&nodes[i..end]) {
            if item.is_empty() {
                return Err(SqlError::syntax(","));
            }
            let is_star = item.last().is_some_and(|n| n.is_punct("*"))
                && (item.len() == 1 || (item.len() == 3 && item[1].is_punct(".")));
            if is_star {
                let sql = if item.len() == 1 {
                    "*".to_string()
                } else {
                    match item[0].tok() {
                        Some(Tok::Word(w) | Tok::Quoted(w)) => format!("{}.*", quote_ident(w)),
                        _ => return Err(SqlError::syntax("*")),
                    }
                };
                items_sql.push(sql);
                cols.push(("*".to_string(), None));
                continue;
            }
            let (expr_nodes, alias) = split_alias(item);
            let (sql, dtype) = self.expr(expr_nodes)?;
            let name = alias.unwrap_or_else(|| default_name(expr_nodes));
            items_sql.push(format!("{sql} AS {}", quote_ident_always(&name)));
            if let Some(t) = dtype {
                self.scope.insert(name.to_ascii_lowercase(), t);
            }
            cols.push((name, dtype));
        }
        if items_sql.is_empty() {
            return Err(SqlError::syntax("SELECT"));
        }
        Ok((format!("{head} {}", items_sql.join(", ")), cols, end))
    }

    /// `<left> ± INTERVAL n unit` → SQLite date arithmetic on the left operand.
    fn interval(&mut self, nodes: &[Node], start: usize, out: &mut Vec<Piece>) -> Result<usize, SqlError> {
        let mut i = start + 1;
        let mut negative = false;
        if nodes.get(i).is_some_and(|n| n.is_punct("-")) {
            negative = true;
            i += 1;
        }
        let (amount, unit_word) = match nodes.get(i).and_then(Node::tok) {
            Some(Tok::Num(n)) => {
                let u = match nodes.get(i + 1).and_then(Node::tok) {
                    Some(Tok::Word(w)) => w.clone(),
                    _ => return Err(SqlError::syntax("INTERVAL")),
                };
                i += 2;
                (n.clone(), u)
            }
            Some(Tok::Str(s)) => {
                let mut words = s.split_whitespace();
                let n = words.next().unwrap_or_default().to_string();
                match words.next() {
                    Some(u) => {
                        i += 1;
                        (n, u.to_string())
                    }
                    None => {
                        let u = match nodes.get(i + 1).and_then(Node::tok) {
                            Some(Tok::Word(w)) => w.clone(),
                            _ => return Err(SqlError::syntax("INTERVAL")),
                        };
                        i += 2;
                        (n, u)
                    }
                }
            }
            _ => return Err(SqlError::unsupported("this INTERVAL form (use INTERVAL <n> <unit>)")),
        };
        let n: i64 = amount
            .trim_start_matches('+')
            .parse()
            .map_err(|_| SqlError::unsupported("fractional or non-numeric INTERVAL amounts"))?;
        let (u, mult) = unit(&unit_word).ok_or_else(|| SqlError::unsupported(&format!("INTERVAL unit {unit_word}")))?;
        let mut n = n * mult;
        if negative {
            n = -n;
        }
        let op = out.pop().filter(|p| p.kind == Kind::Op && (p.sql == "+" || p.sql == "-"));
        let left = out.pop().filter(|p| p.kind == Kind::Atom);
        let (Some(op), Some(left)) = (op, left) else {
            return Err(SqlError::unsupported(
                "INTERVAL outside `<timestamp> + INTERVAL …` or `<timestamp> - INTERVAL …`",
            ));
        };
        if op.sql == "-" {
            n = -n;
        }
        let modifier = literal(&format!("{n:+} {u}"));
        let piece = if left.dtype == Some(DType::Date) {
            Piece::atom(format!("date({}, {modifier})", left.sql), Some(DType::Date))
        } else {
            Piece::atom(format!("strftime({TS_FMT}, {}, {modifier})", left.sql), Some(DType::Timestamp))
        };
        out.push(piece);
        Ok(i)
    }

    pub(super) fn param(&mut self, name: &str) -> Result<Piece, SqlError> {
        let Some(t) = self.param_types.get(name) else {
            return Err(SqlError::new(
                "UNBOUND_SQL_PARAMETER",
                "42P02",
                format!(
                    "Found the unbound parameter: {name}. Please, fix `args` and provide a mapping of the parameter to either a SQL literal or collection constructor functions such as `map()`, `array()`, `struct()`."
                ),
            ));
        };
        let idx = match self.params.iter().position(|p| p == name) {
            Some(k) => k + 1,
            None => {
                self.params.push(name.to_string());
                self.params.len()
            }
        };
        Ok(Piece::atom(format!("?{idx}"), Some(*t)))
    }

    /// One operand starting at `i`, with its postfix subscripts and `::` casts.
    fn atom(&mut self, nodes: &[Node], i: usize) -> Result<Option<(Piece, usize)>, SqlError> {
        let Some(node) = nodes.get(i) else { return Ok(None) };
        let (mut piece, mut j) = match node {
            Node::Group('(', items) => {
                let starts_query = items.first().is_some_and(|n| n.is_word("SELECT") || n.is_word("WITH"));
                if starts_query {
                    let (sql, cols) = self.subquery(items)?;
                    let t = if cols.len() == 1 { cols[0].1 } else { None };
                    (Piece::atom(format!("({sql})"), t), i + 1)
                } else {
                    let (sql, t) = self.expr(items)?;
                    (Piece::atom(format!("({sql})"), t), i + 1)
                }
            }
            Node::Group(..) => return Ok(None),
            Node::Tok(Tok::Str(s)) => {
                let lit = if looks_like_timestamp(s) {
                    canonical_timestamp(s).map(|c| literal(&c)).unwrap_or_else(|| literal(s))
                } else {
                    literal(s)
                };
                (Piece::atom(lit, Some(DType::String)), i + 1)
            }
            Node::Tok(Tok::Num(n)) => {
                let t = if n.contains(['.', 'e', 'E']) { DType::Double } else { DType::Int };
                (Piece::atom(n.clone(), Some(t)), i + 1)
            }
            Node::Tok(Tok::Param(p)) => (self.param(p)?, i + 1),
            Node::Tok(Tok::Punct(_)) => return Ok(None),
            Node::Tok(Tok::Word(w) | Tok::Quoted(w)) => {
                let quoted = matches!(node, Node::Tok(Tok::Quoted(_)));
                let upper = w.to_ascii_uppercase();
                let next_group = matches!(nodes.get(i + 1), Some(Node::Group('(', _)));
                if !quoted && next_group && !not_a_function(w) {
                    let Some(Node::Group(_, args)) = nodes.get(i + 1) else { return Ok(None) };
                    (self.function(w, args)?, i + 2)
                } else if !quoted && matches!(upper.as_str(), "TRUE" | "FALSE") {
                    (Piece::atom(upper, Some(DType::Boolean)), i + 1)
                } else if !quoted && upper == "NULL" {
                    (Piece::atom("NULL", Some(DType::Null)), i + 1)
                } else if !quoted
                    && matches!(upper.as_str(), "TIMESTAMP" | "DATE")
                    && matches!(nodes.get(i + 1), Some(Node::Tok(Tok::Str(_))))
                {
                    let Some(Node::Tok(Tok::Str(s))) = nodes.get(i + 1) else { return Ok(None) };
                    let (v, t) = if upper == "DATE" {
                        (super::canonical_date(s), DType::Date)
                    } else {
                        (canonical_timestamp(s), DType::Timestamp)
                    };
                    let v = v.ok_or_else(|| {
                        SqlError::new(
                            "INVALID_TYPED_LITERAL",
                            "42604",
                            format!("The value of the typed literal {upper} is invalid: '{s}'."),
                        )
                    })?;
                    (Piece::atom(literal(&v), Some(t)), i + 2)
                } else if !quoted && matches!(upper.as_str(), "CURRENT_TIMESTAMP" | "CURRENT_DATE" | "LOCALTIMESTAMP") {
                    (self.function(w, &[])?, i + 1)
                } else if !quoted && is_reserved(w) {
                    return Ok(None);
                } else {
                    self.path(nodes, i)?
                }
            }
        };
        // Postfix: subscripts and `::` casts.
        loop {
            match nodes.get(j) {
                Some(Node::Group('[', items)) => {
                    piece = self.subscript(piece, items)?;
                    j += 1;
                }
                Some(n) if n.is_punct("::") => {
                    let (type_nodes, next) = type_nodes(nodes, j + 1);
                    piece = cast(&piece, type_nodes)?;
                    j = next;
                }
                _ => break,
            }
        }
        Ok(Some((piece, j)))
    }

    /// `a.b.c`: a column, a qualified column, or a struct field / map key of a nested column.
    fn path(&mut self, nodes: &[Node], start: usize) -> Result<(Piece, usize), SqlError> {
        let mut parts = Vec::new();
        let mut i = start;
        loop {
            match nodes.get(i).and_then(Node::tok) {
                Some(Tok::Word(w) | Tok::Quoted(w)) => parts.push(w.clone()),
                _ => return Err(SqlError::syntax(".")),
            }
            i += 1;
            if nodes.get(i).is_some_and(|n| n.is_punct("."))
                && matches!(nodes.get(i + 1), Some(Node::Tok(Tok::Word(_) | Tok::Quoted(_))))
            {
                i += 1;
                continue;
            }
            break;
        }
        let lower: Vec<String> = parts.iter().map(|p| p.to_ascii_lowercase()).collect();
        // Where does a nested (struct/map) column sit: first part, or after a qualifier?
        let nested_at = if is_nested(&lower[0]) && parts.len() >= 2 {
            Some(0)
        } else if parts.len() >= 3 && is_nested(&lower[1]) {
            Some(1)
        } else {
            None
        };
        let piece = match nested_at {
            Some(k) => {
                let column: Vec<String> = parts[..=k].iter().map(|p| quote_ident(p)).collect();
                let fields = &parts[k + 1..];
                let path: String = fields.iter().map(|f| format!(".\"{}\"", f.replace('"', ""))).collect();
                let t = if fields.len() == 1 {
                    field_type(&lower[k], &fields[0].to_ascii_lowercase())
                } else {
                    DType::String
                };
                Piece::atom(format!("json_extract({}, '${path}')", column.join(".")), Some(t))
            }
            None => {
                let last = lower.last().cloned().unwrap_or_default();
                let t = self.scope.get(&last).copied().or_else(|| column_type(&last));
                Piece::atom(parts.iter().map(|p| quote_ident(p)).collect::<Vec<_>>().join("."), t)
            }
        };
        Ok((piece, i))
    }

    fn subscript(&mut self, base: Piece, items: &[Node]) -> Result<Piece, SqlError> {
        let sql = match items {
            [Node::Tok(Tok::Str(k))] => format!("json_extract({}, '$.\"{}\"')", base.sql, k.replace(['"', '\''], "")),
            [Node::Tok(Tok::Num(n))] if n.chars().all(|c| c.is_ascii_digit()) => {
                format!("json_extract({}, '$[{n}]')", base.sql)
            }
            [Node::Tok(Tok::Param(p))] => {
                let param = self.param(p)?;
                format!("json_extract({}, '$.' || json_quote({}))", base.sql, param.sql)
            }
            _ => {
                return Err(SqlError::unsupported(
                    "subscripts other than a string key, an integer index or a parameter",
                ));
            }
        };
        Ok(Piece::atom(sql, Some(DType::String)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(sql: &str) -> Translated {
        let params: HashMap<String, DType> = [
            ("since".to_string(), DType::Timestamp),
            ("user".to_string(), DType::String),
            ("d".to_string(), DType::Date),
        ]
        .into_iter()
        .collect();
        translate(sql, &params).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    #[test]
    fn tables_fields_maps_and_parameters() {
        let t = tr(
            "SELECT user_identity.email, request_params.user AS u, a.response.status_code, request_params['key'] FROM system.access.audit a WHERE event_time > :since AND lower(request_params.user) = lower(:user) AND event_time > :since",
        );
        assert_eq!(
            t.sql,
            "SELECT json_extract(user_identity, '$.\"email\"') AS \"email\", json_extract(request_params, '$.\"user\"') AS \"u\", json_extract(a.response, '$.\"status_code\"') AS \"status_code\", json_extract(request_params, '$.\"key\"') AS \"request_params['key']\" FROM \"system.access.audit\" a WHERE event_time > ?1 AND lower(json_extract(request_params, '$.\"user\"')) = lower(?2) AND event_time > ?1"
        );
        assert_eq!(t.params, vec!["since", "user"]);
        assert_eq!(t.columns[0], ("email".to_string(), Some(DType::String)));
        assert_eq!(t.columns[2], ("status_code".to_string(), Some(DType::Int)));
    }

    #[test]
    fn unknown_tables_and_unbound_parameters_fail_like_databricks() {
        let e = translate("SELECT * FROM system.access.audit_x", &HashMap::new()).unwrap_err();
        assert_eq!(e.class, "TABLE_OR_VIEW_NOT_FOUND");
        assert!(e.to_string().contains("`system`.`access`.`audit_x`"), "{e}");
        let e = translate("SELECT * FROM system.access.audit WHERE event_time > :nope", &HashMap::new()).unwrap_err();
        assert_eq!(e.class, "UNBOUND_SQL_PARAMETER");
        let e = translate("DELETE FROM system.access.audit", &HashMap::new()).unwrap_err();
        assert!(e.class.starts_with("UNSUPPORTED_FEATURE"));
        let e =
            translate("SELECT 1 FROM system.access.audit QUALIFY row_number() OVER (ORDER BY 1) = 1", &HashMap::new())
                .unwrap_err();
        assert!(e.class.starts_with("UNSUPPORTED_FEATURE"), "{e}");
    }

    #[test]
    fn aggregates_intervals_and_casts() {
        let t = tr(
            "SELECT date_trunc('HOUR', event_time) AS hr, count(*) AS n, collect_set(action_name) AS actions, cast(request_params.tokenExpirationTime AS BIGINT) exp FROM system.access.audit WHERE event_time >= current_timestamp() - INTERVAL 24 HOURS AND event_date >= :d - INTERVAL 1 DAY GROUP BY 1 HAVING count(*) > 1",
        );
        assert!(t.sql.contains("strftime('%Y-%m-%d %H:00:00.000', event_time) AS \"hr\""), "{}", t.sql);
        assert!(
            t.sql.contains("strftime('%Y-%m-%d %H:%M:%f', strftime('%Y-%m-%d %H:%M:%f', 'now'), '-24 hours')"),
            "{}",
            t.sql
        );
        assert!(t.sql.contains("date(?1, '-1 days')"), "{}", t.sql);
        assert!(
            t.sql.contains("json_group_array(DISTINCT action_name) FILTER (WHERE action_name IS NOT NULL)"),
            "{}",
            t.sql
        );
        let types: Vec<Option<DType>> = t.columns.iter().map(|c| c.1).collect();
        assert_eq!(types, vec![Some(DType::Timestamp), Some(DType::Long), Some(DType::Array), Some(DType::Long)]);
    }

    #[test]
    fn ctes_keep_their_column_types_and_names() {
        let t = tr(
            "WITH w AS (SELECT min(event_time) AS first_seen, count(*) AS c FROM system.access.audit) SELECT w.first_seen, c + 1 AS c1, 'x' || 'y' FROM w",
        );
        assert!(t.sql.starts_with("WITH w AS (SELECT min(event_time) AS \"first_seen\""), "{}", t.sql);
        assert_eq!(t.columns[0], ("first_seen".to_string(), Some(DType::Timestamp)));
        assert_eq!(t.columns[1].1, Some(DType::Long));
        assert_eq!(t.columns[2], ("'x' || 'y'".to_string(), Some(DType::String)));
    }

    #[test]
    fn literals_and_operators() {
        let t = tr(
            r#"SELECT "a'b" AS s, TIMESTAMP '2026-03-10 21:00:00' AS t, x <=> NULL AS n, a ILIKE '%Bob%' AS l FROM system.access.audit WHERE event_time >= '2026-03-10T21:00:00Z'"#,
        );
        assert!(t.sql.contains("'a''b' AS \"s\""), "{}", t.sql);
        assert!(t.sql.contains("'2026-03-10 21:00:00.000' AS \"t\""), "{}", t.sql);
        assert!(t.sql.contains("x IS NULL AS \"n\""), "{}", t.sql);
        assert!(t.sql.contains("(lower(a) LIKE lower('%Bob%'))"), "{}", t.sql);
        assert!(t.sql.contains("event_time >= '2026-03-10 21:00:00.000'"), "{}", t.sql);
    }
}
