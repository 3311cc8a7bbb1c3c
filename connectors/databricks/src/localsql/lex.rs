//! Tokens and bracket trees of Databricks (Spark) SQL text.
//!
//! Spark lexes differently from SQLite in ways that matter: both `'...'` and `"..."` are string
//! literals with backslash escapes, identifiers are quoted with backticks, adjacent string
//! literals concatenate, and `:name` is a parameter marker.

use super::SqlError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// An unquoted identifier or keyword, as written.
    Word(String),
    /// A backtick-quoted identifier.
    Quoted(String),
    /// A string literal, escapes decoded.
    Str(String),
    /// A numeric literal (type suffixes such as `L` dropped).
    Num(String),
    /// `:name`
    Param(String),
    Punct(String),
}

impl Tok {
    pub fn is_word(&self, w: &str) -> bool {
        matches!(self, Tok::Word(x) if x.eq_ignore_ascii_case(w))
    }
    pub fn is_punct(&self, p: &str) -> bool {
        matches!(self, Tok::Punct(x) if x == p)
    }
    /// The text to show in a syntax error.
    pub fn shown(&self) -> String {
        match self {
            Tok::Word(w) | Tok::Num(w) | Tok::Punct(w) => w.clone(),
            Tok::Quoted(q) => format!("`{q}`"),
            Tok::Str(s) => format!("'{s}'"),
            Tok::Param(p) => format!(":{p}"),
        }
    }
}

/// A token, or a bracketed group (`(`...`)` or `[`...`]`) of nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Tok(Tok),
    Group(char, Vec<Node>),
}

impl Node {
    pub fn tok(&self) -> Option<&Tok> {
        match self {
            Node::Tok(t) => Some(t),
            Node::Group(..) => None,
        }
    }
    pub fn is_word(&self, w: &str) -> bool {
        self.tok().is_some_and(|t| t.is_word(w))
    }
    pub fn is_punct(&self, p: &str) -> bool {
        self.tok().is_some_and(|t| t.is_punct(p))
    }
}

const PUNCTS: [&str; 24] = [
    "<=>", "<=", ">=", "<>", "!=", "==", "||", "&&", "::", "(", ")", "[", "]", ",", ".", ";", "+", "-", "*", "/", "%",
    "=", "<", ">",
];

pub fn lex(sql: &str) -> Result<Vec<Tok>, SqlError> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out: Vec<Tok> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            if i >= chars.len() {
                return Err(SqlError::new(
                    "UNCLOSED_BRACKETED_COMMENT",
                    "42601",
                    "Found an unclosed bracketed comment.",
                ));
            }
            i += 2;
        } else if c == '\'' || c == '"' {
            let (s, next) = string_literal(&chars, i)?;
            // Spark concatenates adjacent string literals: 'a' 'b' is 'ab'.
            if let Some(Tok::Str(prev)) = out.last_mut() {
                prev.push_str(&s);
            } else {
                out.push(Tok::Str(s));
            }
            i = next;
        } else if c == '`' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(SqlError::syntax("`")),
                    Some('`') if chars.get(i + 1) == Some(&'`') => {
                        s.push('`');
                        i += 2;
                    }
                    Some('`') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Quoted(s));
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let save = i;
                i += 1;
                if i < chars.len() && (chars[i] == '+' || chars[i] == '-') {
                    i += 1;
                }
                if i < chars.len() && chars[i].is_ascii_digit() {
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                } else {
                    i = save;
                }
            }
            let num: String = chars[start..i].iter().collect();
            // Type suffixes: 10L, 1S, 1Y, 1.0D, 1.0F, 1.0BD.
            let rest: String = chars[i..].iter().take(2).collect::<String>().to_ascii_uppercase();
            if rest.starts_with("BD") && !chars.get(i + 2).is_some_and(|c| c.is_alphanumeric() || *c == '_') {
                i += 2;
            } else if let Some(s) = rest.chars().next()
                && matches!(s, 'L' | 'S' | 'Y' | 'D' | 'F')
                && !chars.get(i + 1).is_some_and(|c| c.is_alphanumeric() || *c == '_')
            {
                i += 1;
            }
            out.push(Tok::Num(num));
        } else if c == ':' && chars.get(i + 1).is_some_and(|n| n.is_alphabetic() || *n == '_') {
            let start = i + 1;
            i += 1;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Param(chars[start..i].iter().collect()));
        } else if c == '?' {
            return Err(SqlError::new(
                "UNBOUND_SQL_PARAMETER",
                "42P02",
                "Positional parameter markers (?) are not supported by the Statement Execution API; use named markers (:name).",
            ));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$') {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            let rest: String = chars[i..chars.len().min(i + 3)].iter().collect();
            let p = PUNCTS.iter().find(|p| rest.starts_with(**p)).ok_or_else(|| SqlError::syntax(&c.to_string()))?;
            out.push(Tok::Punct((*p).to_string()));
            i += p.chars().count();
        }
    }
    Ok(out)
}

fn string_literal(chars: &[char], start: usize) -> Result<(String, usize), SqlError> {
    let quote = chars[start];
    let mut s = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(SqlError::new("PARSE_SYNTAX_ERROR", "42601", "Syntax error: unclosed string literal.")),
            Some('\\') => {
                let Some(&e) = chars.get(i + 1) else {
                    return Err(SqlError::new("PARSE_SYNTAX_ERROR", "42601", "Syntax error: unclosed string literal."));
                };
                match e {
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    'r' => s.push('\r'),
                    'b' => s.push('\u{8}'),
                    '0' => s.push('\0'),
                    'Z' => s.push('\u{1a}'),
                    // Kept for LIKE, as Spark does.
                    '%' | '_' => {
                        s.push('\\');
                        s.push(e);
                    }
                    other => s.push(other),
                }
                i += 2;
            }
            Some(ch) if *ch == quote => return Ok((s, i + 1)),
            Some(ch) => {
                s.push(*ch);
                i += 1;
            }
        }
    }
}

/// Groups tokens by brackets. A trailing `;` is allowed; anything after it is not.
pub fn tree(toks: Vec<Tok>) -> Result<Vec<Node>, SqlError> {
    let mut toks = toks;
    if toks.last().is_some_and(|t| t.is_punct(";")) {
        toks.pop();
    }
    if toks.iter().any(|t| t.is_punct(";")) {
        return Err(SqlError::new(
            "PARSE_SYNTAX_ERROR",
            "42601",
            "Syntax error at or near ';': the Statement Execution API runs one statement at a time.",
        ));
    }
    let mut stack: Vec<(char, Vec<Node>)> = vec![(' ', Vec::new())];
    for t in toks {
        match &t {
            Tok::Punct(p) if p == "(" || p == "[" => stack.push((p.chars().next().unwrap_or('('), Vec::new())),
            Tok::Punct(p) if p == ")" || p == "]" => {
                let want = if p == ")" { '(' } else { '[' };
                let (open, items) = stack.pop().ok_or_else(|| SqlError::syntax(p))?;
                if open != want || stack.is_empty() {
                    return Err(SqlError::syntax(p));
                }
                if let Some(top) = stack.last_mut() {
                    top.1.push(Node::Group(open, items));
                }
            }
            _ => {
                if let Some(top) = stack.last_mut() {
                    top.1.push(Node::Tok(t));
                }
            }
        }
    }
    if stack.len() != 1 {
        return Err(SqlError::new("PARSE_SYNTAX_ERROR", "42601", "Syntax error at end of input: unclosed bracket."));
    }
    Ok(stack.pop().map(|(_, n)| n).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spark_lexing_rules() {
        let t = lex(r#"SELECT "a\"b", 'it\'s' 'ok', `we ird`, :since, 10L, 1.5e3, x::INT -- c
        /* block */ <=> 'a\%'"#)
        .unwrap();
        assert_eq!(t[1], Tok::Str("a\"b".into()));
        assert_eq!(t[3], Tok::Str("it'sok".into()));
        assert_eq!(t[5], Tok::Quoted("we ird".into()));
        assert_eq!(t[7], Tok::Param("since".into()));
        assert_eq!(t[9], Tok::Num("10".into()));
        assert_eq!(t[11], Tok::Num("1.5e3".into()));
        assert!(t[14].is_punct("::"));
        assert!(t[16].is_punct("<=>"));
        assert_eq!(t[17], Tok::Str("a\\%".into()));
        assert_eq!(lex("SELECT ?").unwrap_err().class, "UNBOUND_SQL_PARAMETER");
        assert!(lex("SELECT 'open").is_err());
    }

    #[test]
    fn trees_group_brackets_and_refuse_two_statements() {
        let n = tree(lex("SELECT f(a, [1]) ;").unwrap()).unwrap();
        assert_eq!(n.len(), 3);
        assert!(matches!(&n[2], Node::Group('(', items) if items.len() == 3));
        assert!(tree(lex("SELECT 1; SELECT 2").unwrap()).is_err());
        assert!(tree(lex("SELECT (1").unwrap()).is_err());
        assert!(tree(lex("SELECT 1)").unwrap()).is_err());
    }
}
