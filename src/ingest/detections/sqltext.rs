//! Just enough reading of a detection's SQL text to check it before it is ever sent: which
//! `:name` parameter markers it uses, that it is one read-only query, and no positional `?`.
//!
//! This is a scanner, not a parser: it skips string literals (`'…'`, `"…"` with backslash
//! escapes), backtick identifiers and comments, and reads `::` as a cast rather than a marker.
//! It never rewrites the SQL — values always travel as statement parameters.

/// A problem in the SQL text, at a byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlProblem {
    pub offset: usize,
    pub message: String,
}

/// A `:name` marker and where it starts (the colon).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub name: String,
    pub offset: usize,
}

/// What the scanner found.
#[derive(Debug, Default)]
pub struct Scanned {
    pub markers: Vec<Marker>,
    pub problems: Vec<SqlProblem>,
}

/// Scans `sql` for parameter markers and for what detections may not contain.
pub fn scan(sql: &str) -> Scanned {
    let b = sql.as_bytes();
    let mut out = Scanned::default();
    let mut i = 0;
    let mut first_word: Option<(usize, String)> = None;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' | b'"' | b'`' => {
                let start = i;
                i += 1;
                let mut closed = false;
                while i < b.len() {
                    if b[i] == b'\\' && c != b'`' {
                        i += 2;
                        continue;
                    }
                    if b[i] == c {
                        // Backticks escape themselves by doubling.
                        if c == b'`' && b.get(i + 1) == Some(&b'`') {
                            i += 2;
                            continue;
                        }
                        closed = true;
                        i += 1;
                        break;
                    }
                    i += 1;
                }
                if !closed {
                    let what = if c == b'`' { "identifier" } else { "string" };
                    out.problems.push(SqlProblem { offset: start, message: format!("unterminated {what} literal") });
                }
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let start = i;
                match sql[i + 2..].find("*/") {
                    Some(end) => i = i + 2 + end + 2,
                    None => {
                        out.problems.push(SqlProblem { offset: start, message: "unterminated /* comment".into() });
                        i = b.len();
                    }
                }
                continue;
            }
            b':' if b.get(i + 1) == Some(&b':') => {
                i += 2;
                continue;
            }
            b':' if b.get(i + 1).is_some_and(|n| n.is_ascii_alphabetic() || *n == b'_') => {
                let start = i;
                i += 1;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.markers.push(Marker { name: sql[start + 1..i].to_string(), offset: start });
                continue;
            }
            b'?' => out.problems.push(SqlProblem {
                offset: i,
                message: "positional parameters (?) are not supported by Databricks: use a named marker such as :since"
                    .into(),
            }),
            b';' => {
                if sql[i + 1..].trim().is_empty() {
                    out.problems.push(SqlProblem {
                        offset: i,
                        message: "remove the trailing ';': a detection is one statement".into(),
                    });
                } else {
                    out.problems.push(SqlProblem {
                        offset: i,
                        message: "a detection is one statement: remove the ';' and what follows it".into(),
                    });
                }
            }
            c if c.is_ascii_alphabetic() && first_word.is_none() => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                first_word = Some((start, sql[start..i].to_ascii_uppercase()));
                continue;
            }
            b'(' if first_word.is_none() => first_word = Some((i, "(".into())),
            _ => {}
        }
        i += 1;
    }
    match first_word {
        None => out.problems.push(SqlProblem { offset: 0, message: "the SQL is empty".into() }),
        Some((_, w)) if w == "SELECT" || w == "WITH" || w == "(" => {}
        Some((at, w)) => out.problems.push(SqlProblem {
            offset: at,
            message: format!("detections run read-only queries: the SQL must start with SELECT or WITH, not {w}"),
        }),
    }
    out
}

/// 1-based line and column (in characters) of byte `offset` inside `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str) -> Vec<String> {
        scan(sql).markers.into_iter().map(|m| m.name).collect()
    }

    #[test]
    fn finds_markers_outside_strings_comments_and_casts() {
        let sql = "SELECT x::INT, ':nope', \":no\", `:no` -- :comment\n /* :block */ FROM t WHERE a >= :since AND b < :until_date AND c = :n1";
        assert_eq!(names(sql), vec!["since", "until_date", "n1"]);
        assert!(scan(sql).problems.is_empty());
        assert_eq!(names("SELECT 'it\\'s :x' AS s, :y"), vec!["y"]);
    }

    #[test]
    fn refuses_what_detections_cannot_be() {
        let p = scan("DELETE FROM system.access.audit").problems;
        assert!(p[0].message.contains("must start with SELECT or WITH, not DELETE"), "{p:?}");
        let p = scan("SELECT 1;").problems;
        assert!(p[0].message.contains("trailing ';'"), "{p:?}");
        let p = scan("SELECT 1; DROP TABLE x").problems;
        assert!(p.iter().any(|p| p.message.contains("one statement")), "{p:?}");
        let p = scan("SELECT * FROM t WHERE a = ?").problems;
        assert_eq!(p[0].offset, 26);
        assert!(scan("SELECT 'open").problems[0].message.contains("unterminated string"));
        assert!(scan("  -- only a comment\n").problems[0].message.contains("empty"));
        assert!(scan("WITH a AS (SELECT 1) SELECT * FROM a").problems.is_empty());
    }

    #[test]
    fn positions_count_lines_and_characters() {
        assert_eq!(line_col("ab\ncdé:x", 7), (2, 4));
        assert_eq!(line_col("x", 0), (1, 1));
    }
}
