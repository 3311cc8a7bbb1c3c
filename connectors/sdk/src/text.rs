//! Small text helpers every connector needs when it puts untrusted alert data somewhere.

use serde_json::Value;

/// Keys whose values are treated as secrets wherever floodgate stores or shows a JSON value.
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "api_key",
    "apikey",
    "authorization",
    "private_key",
    "routing_key",
    "integration_key",
    "webhook_url",
    "signing_secret",
];

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace('-', "_");
    SECRET_KEYS.iter().any(|s| k == *s || k.ends_with(&format!("_{s}")))
}

/// Replaces the value of every secret-looking key (recursively) with `"[redacted]"`.
pub fn redact_json(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    if is_secret_key(k) && !v.is_null() {
                        (k.clone(), Value::String("[redacted]".into()))
                    } else {
                        (k.clone(), redact_json(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_json).collect()),
        other => other.clone(),
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary, adding `…` when it cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_nested_secret_keys_only() {
        let v = json!({"url": "https://x", "headers": {"Authorization": "Bearer abc", "X-Api-Key": "k"},
                       "items": [{"client_secret": "s", "name": "n"}], "token_count": 3});
        let r = redact_json(&v);
        assert_eq!(r["headers"]["Authorization"], "[redacted]");
        assert_eq!(r["headers"]["X-Api-Key"], "[redacted]");
        assert_eq!(r["items"][0]["client_secret"], "[redacted]");
        assert_eq!(r["items"][0]["name"], "n");
        assert_eq!(r["token_count"], 3);
        assert_eq!(r["url"], "https://x");
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo world", 6), "hé…");
        assert_eq!(truncate("héllo world", 5), "h…");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
