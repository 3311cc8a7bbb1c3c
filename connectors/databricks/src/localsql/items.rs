//! Select items: their aliases, their Spark-style default names, and their result types.

use super::DType;
use super::lex::{Node, Tok};
use super::translate::{Kind, Piece, is_reserved, split_commas};

/// Splits `expr [AS] alias` in a select item.
pub(super) fn split_alias(item: &[Node]) -> (&[Node], Option<String>) {
    let n = item.len();
    let name_of = |node: &Node| match node.tok() {
        Some(Tok::Quoted(q)) => Some(q.clone()),
        Some(Tok::Word(w))
            if !is_reserved(w) && !["TRUE", "FALSE", "NULL"].iter().any(|k| k.eq_ignore_ascii_case(w)) =>
        {
            Some(w.clone())
        }
        _ => None,
    };
    if n >= 3
        && item[n - 2].is_word("AS")
        && let Some(a) = name_of(&item[n - 1])
    {
        return (&item[..n - 2], Some(a));
    }
    if n >= 2
        && let Some(a) = name_of(&item[n - 1])
    {
        let prev_ends_operand = match &item[n - 2] {
            Node::Group('(', _) => true,
            Node::Group(..) => true,
            Node::Tok(Tok::Str(_) | Tok::Num(_) | Tok::Param(_) | Tok::Quoted(_)) => true,
            Node::Tok(Tok::Word(w)) => !is_reserved(w) || w.eq_ignore_ascii_case("END"),
            Node::Tok(Tok::Punct(_)) => false,
        };
        // `a.b` ends in a word after a dot: that is a path, not an alias.
        let dotted = n >= 2 && item[n - 2].is_punct(".");
        if prev_ends_operand && !dotted {
            return (&item[..n - 1], Some(a));
        }
    }
    (item, None)
}

/// Spark's name for an unaliased select item: a column's (or field's) own name, else the
/// expression text.
pub(super) fn default_name(expr: &[Node]) -> String {
    let is_path = !expr.is_empty()
        && expr.iter().enumerate().all(|(k, n)| {
            if k % 2 == 0 { matches!(n.tok(), Some(Tok::Word(_) | Tok::Quoted(_))) } else { n.is_punct(".") }
        });
    if is_path && let Some(Tok::Word(w) | Tok::Quoted(w)) = expr.last().and_then(Node::tok) {
        return w.clone();
    }
    render(expr)
}

fn render(nodes: &[Node]) -> String {
    let mut out = String::new();
    for (k, n) in nodes.iter().enumerate() {
        let text = match n {
            Node::Tok(Tok::Str(s)) => format!("'{s}'"),
            Node::Tok(t) => t.shown(),
            Node::Group(open, items) => {
                let close = if *open == '(' { ')' } else { ']' };
                let inner = split_commas(items).iter().map(|a| render(a)).collect::<Vec<_>>().join(", ");
                format!("{open}{inner}{close}")
            }
        };
        let glue = k == 0
            || n.is_punct(".")
            || nodes[k - 1].is_punct(".")
            || matches!(n, Node::Group(..)) && matches!(nodes[k - 1].tok(), Some(Tok::Word(_)));
        if !glue {
            out.push(' ');
        }
        out.push_str(&text);
    }
    out
}

pub(super) fn quote_ident_always(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The type of a whole expression, from its pieces.
pub(super) fn infer(pieces: &[Piece]) -> Option<DType> {
    if pieces.len() == 1 {
        return pieces[0].dtype;
    }
    if pieces.first().is_some_and(|p| p.kind == Kind::Kw && p.sql == "CASE") {
        let then = pieces.iter().position(|p| p.kind == Kind::Kw && p.sql == "THEN")?;
        return pieces.get(then + 1).and_then(|p| p.dtype);
    }
    let has = |ops: &[&str]| pieces.iter().any(|p| p.kind != Kind::Atom && ops.contains(&p.sql.as_str()));
    if has(&[
        "=", "<", ">", "<=", ">=", "!=", "<>", "IS", "IS NOT", "AND", "OR", "NOT", "IN", "LIKE", "REGEXP", "BETWEEN",
        "EXISTS",
    ]) {
        return Some(DType::Boolean);
    }
    if has(&["||"]) {
        return Some(DType::String);
    }
    if has(&["+", "-", "*", "/", "* 1.0 /", "%"]) {
        let atoms: Vec<Option<DType>> = pieces.iter().filter(|p| p.kind == Kind::Atom).map(|p| p.dtype).collect();
        if has(&["* 1.0 /"]) || atoms.contains(&Some(DType::Double)) {
            return Some(DType::Double);
        }
        if atoms.iter().all(|t| *t == Some(DType::Int)) {
            return Some(DType::Int);
        }
        if atoms.iter().all(|t| matches!(t, Some(DType::Int | DType::Long))) {
            return Some(DType::Long);
        }
    }
    None
}
