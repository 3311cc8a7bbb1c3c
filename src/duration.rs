//! Human durations as playbooks and config write them: `500ms`, `30s`, `5m`, `1h30m`, `2d`, `1w`.

use std::time::Duration;

/// The regular expression the JSON Schema publishes for durations (kept in sync with `parse`).
pub const PATTERN: &str = r"^([0-9]+(ms|s|m|h|d|w))+$";

/// Parses a duration. Errors say what is wrong and show a valid example.
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration; write e.g. 30s, 5m, 1h30m".into());
    }
    if t.contains(char::is_whitespace) {
        return Err(format!("invalid duration {s:?}: no spaces allowed; write e.g. 30s, 10m, 1h30m"));
    }
    let bytes = t.as_bytes();
    let mut i = 0;
    let mut total: u128 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(format!(
                "invalid duration {s:?}: expected a number at position {}; write e.g. 30s, 5m, 1h30m",
                i + 1
            ));
        }
        let n: u128 = t[start..i].parse().map_err(|_| format!("invalid duration {s:?}: number too large"))?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let ms_per = match &t[ustart..i] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "" => {
                return Err(format!("invalid duration {s:?}: missing unit after {n}; use ms, s, m, h, d or w"));
            }
            u => {
                return Err(format!("invalid duration {s:?}: unknown unit {u:?}; use ms, s, m, h, d or w"));
            }
        };
        total = total
            .checked_add(n.checked_mul(ms_per).ok_or_else(|| format!("invalid duration {s:?}: too large"))?)
            .ok_or_else(|| format!("invalid duration {s:?}: too large"))?;
    }
    // A century is far beyond any sensible timeout; refusing it keeps arithmetic on instants safe.
    if total > 100 * 365 * 86_400_000 {
        return Err(format!("invalid duration {s:?}: longer than 100 years"));
    }
    Ok(Duration::from_millis(total as u64))
}

/// Formats a duration the way `parse` reads it (largest units first).
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compound_durations() {
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(format(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn rejects_bad_durations_with_reasons() {
        assert!(parse("30").unwrap_err().contains("missing unit"));
        assert!(parse("5y").unwrap_err().contains("unknown unit"));
        assert!(parse("h").unwrap_err().contains("expected a number"));
        assert!(parse("99999999999999999999999w").is_err());
        assert!(parse("").is_err());
    }
}
