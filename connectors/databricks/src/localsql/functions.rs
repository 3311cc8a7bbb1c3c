//! Databricks functions, casts and date arithmetic, written as SQLite expressions.
//!
//! Each function either maps to a SQLite function with the same meaning, or is spelled out
//! (`startswith` → `substr(...) = ...`, `collect_set` → `json_group_array(DISTINCT ...)`).
//! Unknown names pass through, so SQLite reports them and the caller maps that to
//! `UNRESOLVED_ROUTINE`, as Databricks would.

use super::lex::{Node, Tok};
use super::translate::{Piece, Tr, split_commas};
use super::{DType, SqlError};

pub(super) const TS_FMT: &str = "'%Y-%m-%d %H:%M:%f'";

fn ts_expr(inner: &str) -> String {
    format!("strftime({TS_FMT}, {inner})")
}

/// SQLite date modifier unit and multiplier for a Spark interval/date unit.
pub(super) fn unit(u: &str) -> Option<(&'static str, i64)> {
    Some(match u.to_ascii_uppercase().trim_end_matches('S') {
        "SECOND" => ("seconds", 1),
        "MINUTE" => ("minutes", 1),
        "HOUR" => ("hours", 1),
        "DAY" => ("days", 1),
        "WEEK" => ("days", 7),
        "MONTH" => ("months", 1),
        "YEAR" => ("years", 1),
        _ => return None,
    })
}

/// Seconds in a unit, for differences.
fn unit_seconds(u: &str) -> Option<i64> {
    Some(match u.to_ascii_uppercase().trim_end_matches('S') {
        "SECOND" => 1,
        "MINUTE" => 60,
        "HOUR" => 3600,
        "DAY" => 86_400,
        "WEEK" => 604_800,
        _ => return None,
    })
}

/// Part of a timestamp as an integer (`hour(ts)`, `extract(HOUR FROM ts)`).
fn date_part(part: &str, arg: &str) -> Option<String> {
    let fmt = match part.to_ascii_uppercase().as_str() {
        "HOUR" | "HOURS" => "%H",
        "MINUTE" | "MINUTES" => "%M",
        "SECOND" | "SECONDS" => "%S",
        "DAY" | "DAYS" | "DAYOFMONTH" => "%d",
        "MONTH" | "MONTHS" => "%m",
        "YEAR" | "YEARS" => "%Y",
        "DAYOFYEAR" | "DOY" => "%j",
        "DAYOFWEEK" | "DOW" => return Some(format!("(CAST(strftime('%w', {arg}) AS INTEGER) + 1)")),
        _ => return None,
    };
    Some(format!("CAST(strftime('{fmt}', {arg}) AS INTEGER)"))
}

impl Tr<'_> {
    fn args(&mut self, items: &[Node]) -> Result<Vec<(String, Option<DType>)>, SqlError> {
        split_commas(items).into_iter().map(|a| self.expr(a)).collect()
    }

    pub(super) fn function(&mut self, name: &str, items: &[Node]) -> Result<Piece, SqlError> {
        let lname = name.to_ascii_lowercase();
        use DType::*;
        // Forms whose arguments are not a plain comma list.
        match lname.as_str() {
            "cast" | "try_cast" => {
                let k = items.iter().rposition(|n| n.is_word("AS")).ok_or_else(|| SqlError::syntax("CAST"))?;
                let (sql, t) = self.expr(&items[..k])?;
                let (tn, _) = type_nodes(items, k + 1);
                return cast(&Piece::atom(sql, t), tn);
            }
            "extract" => {
                let k = items.iter().position(|n| n.is_word("FROM")).ok_or_else(|| SqlError::syntax("EXTRACT"))?;
                let part = match items.first().and_then(Node::tok) {
                    Some(Tok::Word(w)) | Some(Tok::Str(w)) => w.clone(),
                    _ => return Err(SqlError::syntax("EXTRACT")),
                };
                let (sql, _) = self.expr(&items[k + 1..])?;
                let out = date_part(&part, &sql).ok_or_else(|| SqlError::unsupported(&format!("EXTRACT({part} …)")))?;
                return Ok(Piece::atom(out, Some(Int)));
            }
            "count" if items.len() == 1 && items[0].is_punct("*") => {
                return Ok(Piece::atom("count(*)", Some(Long)));
            }
            "date_trunc" | "timestampadd" | "dateadd" | "timestampdiff" | "datediff" => {
                if let Some(p) = self.unit_function(&lname, items)? {
                    return Ok(p);
                }
            }
            _ => {}
        }
        let args = self.args(items)?;
        let a: Vec<&str> = args.iter().map(|(s, _)| s.as_str()).collect();
        let t = |k: usize| args.get(k).and_then(|(_, t)| *t);
        let n = args.len();
        let want = |k: usize| -> Result<(), SqlError> {
            if n == k {
                Ok(())
            } else {
                Err(SqlError::new(
                    "WRONG_NUM_ARGS.WITHOUT_SUGGESTION",
                    "42605",
                    format!("The `{lname}` requires {k} parameters but the actual number is {n}."),
                ))
            }
        };
        let p = |sql: std::string::String, t: Option<DType>| Ok(Piece::atom(sql, t));
        match lname.as_str() {
            "lower" | "lcase" => p(format!("lower({})", a.join(", ")), Some(String)),
            "upper" | "ucase" => p(format!("upper({})", a.join(", ")), Some(String)),
            "length" | "char_length" | "character_length" | "len" => p(format!("length({})", a.join(", ")), Some(Int)),
            "trim" | "ltrim" | "rtrim" | "replace" => p(format!("{lname}({})", a.join(", ")), Some(String)),
            "substr" | "substring" => p(format!("substr({})", a.join(", ")), Some(String)),
            "instr" => p(format!("instr({})", a.join(", ")), Some(Int)),
            "locate" | "position" => {
                want(2)?;
                p(format!("instr({}, {})", a[1], a[0]), Some(Int))
            }
            "left" => {
                want(2)?;
                p(format!("substr({}, 1, {})", a[0], a[1]), Some(String))
            }
            "right" => {
                want(2)?;
                p(format!("substr({}, -({}))", a[0], a[1]), Some(String))
            }
            "concat" => p(if n == 1 { a[0].to_string() } else { format!("({})", a.join(" || ")) }, Some(String)),
            "concat_ws" => p(format!("concat_ws({})", a.join(", ")), Some(String)),
            "coalesce" | "ifnull" | "nvl" => {
                let t = args.iter().find_map(|(_, t)| t.filter(|t| *t != Null));
                let f = if n == 2 && lname != "coalesce" { "ifnull" } else { "coalesce" };
                p(format!("{f}({})", a.join(", ")), t)
            }
            "nullif" => p(format!("nullif({})", a.join(", ")), t(0)),
            "nvl2" => {
                want(3)?;
                p(format!("(CASE WHEN {} IS NOT NULL THEN {} ELSE {} END)", a[0], a[1], a[2]), t(1))
            }
            "if" | "iff" => {
                want(3)?;
                p(format!("iif({}, {}, {})", a[0], a[1], a[2]), t(1).or(t(2)))
            }
            "greatest" => p(format!("max({})", a.join(", ")), t(0)),
            "least" => p(format!("min({})", a.join(", ")), t(0)),
            "abs" => p(format!("abs({})", a.join(", ")), t(0)),
            "round" => p(format!("round({})", a.join(", ")), if n == 1 { t(0) } else { Some(Double) }),
            "startswith" => {
                want(2)?;
                p(format!("(substr({0}, 1, length({1})) = {1})", a[0], a[1]), Some(Boolean))
            }
            "endswith" => {
                want(2)?;
                p(format!("(substr({0}, -length({1})) = {1})", a[0], a[1]), Some(Boolean))
            }
            "contains" => {
                want(2)?;
                p(format!("(instr({}, {}) > 0)", a[0], a[1]), Some(Boolean))
            }
            "regexp_like" | "rlike" | "regexp" => {
                want(2)?;
                p(format!("({} REGEXP {})", a[0], a[1]), Some(Boolean))
            }
            "split_part" => {
                want(3)?;
                p(split_part(a[0], a[1], a[2])?, Some(String))
            }
            "array_join" => {
                if !(2..=3).contains(&n) {
                    want(2)?;
                }
                p(format!("(SELECT group_concat(value, {}) FROM json_each({}))", a[1], a[0]), Some(String))
            }
            "date_format" => {
                want(2)?;
                let Some(Tok::Str(fmt)) = split_commas(items).get(1).and_then(|n| n.first()).and_then(Node::tok) else {
                    return Err(SqlError::unsupported("date_format with a computed format"));
                };
                p(format!("strftime({}, {})", java_format(fmt)?, a[0]), Some(String))
            }
            "to_json" => {
                want(1)?;
                p(a[0].to_string(), Some(String))
            }
            "get_json_object" => {
                want(2)?;
                p(format!("json_extract({}, {})", a[0], a[1]), Some(String))
            }
            "element_at" => {
                want(2)?;
                p(format!("json_extract({}, '$.' || json_quote({}))", a[0], a[1]), Some(String))
            }
            "size" | "array_size" | "cardinality" => {
                want(1)?;
                p(format!("json_array_length({})", a[0]), Some(Int))
            }
            "array_contains" => {
                want(2)?;
                p(format!("EXISTS (SELECT 1 FROM json_each({}) WHERE value = {})", a[0], a[1]), Some(Boolean))
            }
            "map_keys" => {
                want(1)?;
                p(format!("(SELECT json_group_array(key) FROM json_each({}))", a[0]), Some(Array))
            }
            "array" => p(format!("json_array({})", a.join(", ")), Some(Array)),
            "collect_set" => {
                want(1)?;
                let x = a[0].trim_start_matches("DISTINCT ").to_string();
                p(format!("json_group_array(DISTINCT {x}) FILTER (WHERE {x} IS NOT NULL)"), Some(Array))
            }
            "collect_list" | "array_agg" => {
                want(1)?;
                p(format!("json_group_array({0}) FILTER (WHERE {0} IS NOT NULL)", a[0]), Some(Array))
            }
            "count_if" => {
                want(1)?;
                p(format!("count(CASE WHEN {} THEN 1 END)", a[0]), Some(Long))
            }
            "approx_count_distinct" => {
                want(1)?;
                p(format!("count(DISTINCT {})", a[0]), Some(Long))
            }
            "count" => p(format!("count({})", a.join(", ")), Some(Long)),
            "sum" => {
                let st = match t(0) {
                    Some(Int | Long) => Some(Long),
                    Some(Double) => Some(Double),
                    _ => None,
                };
                p(format!("sum({})", a.join(", ")), st)
            }
            "avg" | "mean" => p(format!("avg({})", a.join(", ")), Some(Double)),
            "min" | "max" => p(format!("{lname}({})", a.join(", ")), t(0)),
            "any_value" | "first" | "any" => {
                want(1)?;
                p(format!("min({})", a[0]), t(0))
            }
            "last" => {
                want(1)?;
                p(format!("max({})", a[0]), t(0))
            }
            "row_number" | "rank" | "dense_rank" | "ntile" => p(format!("{lname}({})", a.join(", ")), Some(Int)),
            "lag" | "lead" | "first_value" | "last_value" => p(format!("{lname}({})", a.join(", ")), t(0)),
            "to_date" | "date" => {
                if n != 1 {
                    return Err(SqlError::unsupported(&format!("{lname} with a format argument")));
                }
                p(format!("date({})", a[0]), Some(Date))
            }
            "to_timestamp" | "timestamp" => {
                if n != 1 {
                    return Err(SqlError::unsupported(&format!("{lname} with a format argument")));
                }
                p(ts_expr(a[0]), Some(Timestamp))
            }
            "current_timestamp" | "now" | "localtimestamp" => p(ts_expr("'now'"), Some(Timestamp)),
            "current_date" | "curdate" => p("date('now')".into(), Some(Date)),
            "date_add" => {
                want(2)?;
                p(format!("date({}, ({}) || ' days')", a[0], a[1]), Some(Date))
            }
            "date_sub" => {
                want(2)?;
                p(format!("date({}, (-({})) || ' days')", a[0], a[1]), Some(Date))
            }
            "datediff" => {
                want(2)?;
                p(format!("CAST(julianday(date({})) - julianday(date({})) AS INTEGER)", a[0], a[1]), Some(Int))
            }
            "unix_timestamp" | "unix_seconds" => {
                let arg = if n == 0 { "'now'" } else { a[0] };
                p(format!("CAST(strftime('%s', {arg}) AS INTEGER)"), Some(Long))
            }
            "unix_millis" => {
                want(1)?;
                p(
                    format!(
                        "(CAST(strftime('%s', {0}) AS INTEGER) * 1000 + CAST(substr(strftime('%f', {0}), 4) AS INTEGER))",
                        a[0]
                    ),
                    Some(Long),
                )
            }
            "from_unixtime" => {
                if n != 1 {
                    return Err(SqlError::unsupported("from_unixtime with a format argument"));
                }
                p(format!("strftime('%Y-%m-%d %H:%M:%S', {}, 'unixepoch')", a[0]), Some(String))
            }
            "timestamp_seconds" => {
                want(1)?;
                p(format!("strftime({TS_FMT}, {}, 'unixepoch')", a[0]), Some(Timestamp))
            }
            "timestamp_millis" => {
                want(1)?;
                p(format!("strftime({TS_FMT}, ({}) / 1000.0, 'unixepoch')", a[0]), Some(Timestamp))
            }
            "hour" | "minute" | "second" | "day" | "dayofmonth" | "month" | "year" | "dayofweek" | "dayofyear" => {
                want(1)?;
                p(date_part(&lname, a[0]).unwrap_or_default(), Some(Int))
            }
            _ => p(format!("{lname}({})", a.join(", ")), None),
        }
    }

    /// Functions whose first argument is a unit keyword or string.
    fn unit_function(&mut self, lname: &str, items: &[Node]) -> Result<Option<Piece>, SqlError> {
        let args = split_commas(items);
        let unit_of = |nodes: &[Node]| -> Option<String> {
            match nodes {
                [Node::Tok(Tok::Word(w) | Tok::Str(w))] => Some(w.clone()),
                _ => None,
            }
        };
        match (lname, args.len()) {
            ("date_trunc", 2) => {
                let u = unit_of(args[0]).ok_or_else(|| SqlError::unsupported("date_trunc with a computed unit"))?;
                let (ts, _) = self.expr(args[1])?;
                let fmt = match u.to_ascii_uppercase().as_str() {
                    "YEAR" | "YYYY" | "YY" => "%Y-01-01 00:00:00.000",
                    "MONTH" | "MM" | "MON" => "%Y-%m-01 00:00:00.000",
                    "DAY" | "DD" => "%Y-%m-%d 00:00:00.000",
                    "HOUR" => "%Y-%m-%d %H:00:00.000",
                    "MINUTE" => "%Y-%m-%d %H:%M:00.000",
                    "SECOND" => "%Y-%m-%d %H:%M:%S.000",
                    other => return Err(SqlError::unsupported(&format!("date_trunc unit {other}"))),
                };
                Ok(Some(Piece::atom(format!("strftime('{fmt}', {ts})"), Some(DType::Timestamp))))
            }
            ("timestampadd" | "dateadd", 3) => {
                let u =
                    unit_of(args[0]).ok_or_else(|| SqlError::unsupported(&format!("{lname} with a computed unit")))?;
                let (su, mult) = unit(&u).ok_or_else(|| SqlError::unsupported(&format!("{lname} unit {u}")))?;
                let (n, _) = self.expr(args[1])?;
                let (ts, _) = self.expr(args[2])?;
                Ok(Some(Piece::atom(
                    format!("strftime({TS_FMT}, {ts}, (({n}) * {mult}) || ' {su}')"),
                    Some(DType::Timestamp),
                )))
            }
            ("timestampdiff" | "datediff", 3) => {
                let u =
                    unit_of(args[0]).ok_or_else(|| SqlError::unsupported(&format!("{lname} with a computed unit")))?;
                let secs = unit_seconds(&u).ok_or_else(|| SqlError::unsupported(&format!("{lname} unit {u}")))?;
                let (start, _) = self.expr(args[1])?;
                let (end, _) = self.expr(args[2])?;
                Ok(Some(Piece::atom(
                    format!("CAST(round((julianday({end}) - julianday({start})) * 86400) / {secs} AS INTEGER)"),
                    Some(DType::Long),
                )))
            }
            _ => Ok(None),
        }
    }
}

/// The nodes naming a type after `AS` or `::`, and the index after them.
pub(super) fn type_nodes(nodes: &[Node], start: usize) -> (&[Node], usize) {
    let mut end = start;
    if matches!(nodes.get(end), Some(Node::Tok(Tok::Word(_)))) {
        end += 1;
        if matches!(nodes.get(end), Some(Node::Group('(', _))) {
            end += 1;
        }
    }
    (&nodes[start.min(nodes.len())..end.min(nodes.len())], end)
}

pub(super) fn cast(value: &Piece, type_nodes: &[Node]) -> Result<Piece, SqlError> {
    let Some(Tok::Word(t)) = type_nodes.first().and_then(Node::tok) else {
        return Err(SqlError::syntax("CAST"));
    };
    let v = &value.sql;
    let numeric = matches!(value.dtype, Some(DType::Int | DType::Long | DType::Double));
    let (sql, dt) = match t.to_ascii_uppercase().as_str() {
        "STRING" | "VARCHAR" | "CHAR" => (format!("CAST({v} AS TEXT)"), DType::String),
        "INT" | "INTEGER" | "SMALLINT" | "TINYINT" | "SHORT" | "BYTE" => (format!("CAST({v} AS INTEGER)"), DType::Int),
        "BIGINT" | "LONG" => (format!("CAST({v} AS INTEGER)"), DType::Long),
        "DOUBLE" | "FLOAT" | "REAL" | "DECIMAL" | "DEC" | "NUMERIC" => (format!("CAST({v} AS REAL)"), DType::Double),
        "BOOLEAN" => (
            format!(
                "(CASE WHEN lower(CAST({v} AS TEXT)) IN ('true', '1', 't', 'yes', 'y') THEN 1 WHEN lower(CAST({v} AS TEXT)) IN ('false', '0', 'f', 'no', 'n') THEN 0 END)"
            ),
            DType::Boolean,
        ),
        "DATE" => (format!("date({v})"), DType::Date),
        "TIMESTAMP" | "TIMESTAMP_NTZ" | "TIMESTAMP_LTZ" if numeric => {
            (format!("strftime({TS_FMT}, {v}, 'unixepoch')"), DType::Timestamp)
        }
        "TIMESTAMP" | "TIMESTAMP_NTZ" | "TIMESTAMP_LTZ" => (ts_expr(v), DType::Timestamp),
        other => return Err(SqlError::unsupported(&format!("CAST to {other}"))),
    };
    Ok(Piece::atom(sql, Some(dt)))
}

/// `split_part(s, delim, n)` for n = 1 or 2, with Spark's empty string for
/// a part that does not exist.
fn split_part(s: &str, d: &str, n: &str) -> Result<String, SqlError> {
    let first = format!("(CASE WHEN instr({s}, {d}) > 0 THEN substr({s}, 1, instr({s}, {d}) - 1) ELSE {s} END)");
    let rest = format!("substr({s}, instr({s}, {d}) + length({d}))");
    match n.trim() {
        "1" => Ok(first),
        "2" => Ok(format!(
            "(CASE WHEN instr({s}, {d}) = 0 THEN '' WHEN instr({rest}, {d}) > 0 THEN substr({rest}, 1, instr({rest}, {d}) - 1) ELSE {rest} END)"
        )),
        other => Err(SqlError::unsupported(&format!("split_part with part number {other} (1 and 2 are supported)"))),
    }
}

/// A Java date pattern (the common letters only) as a strftime format literal.
fn java_format(fmt: &str) -> Result<String, SqlError> {
    let mut out = String::new();
    let mut rest = fmt;
    // strftime's %f is "SS.SSS", so seconds with milliseconds map as one.
    const MAP: [(&str, &str); 7] =
        [("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss.SSS", "%f"), ("ss", "%S")];
    'outer: while !rest.is_empty() {
        for (java, c) in MAP {
            if let Some(r) = rest.strip_prefix(java) {
                out.push_str(c);
                rest = r;
                continue 'outer;
            }
        }
        let ch = rest.chars().next().unwrap_or(' ');
        if ch.is_ascii_alphabetic() {
            return Err(SqlError::unsupported(&format!("date_format pattern letter {ch:?}")));
        }
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    Ok(format!("'{}'", out.replace('\'', "''")))
}
