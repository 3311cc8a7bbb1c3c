//! Escaping of untrusted text for Slack `mrkdwn`.
//!
//! Alert data is attacker-controlled: a rule title or a user agent can contain `<!channel>`,
//! `<@U123>` or `<https://evil.example|click here>`, which Slack would turn into a ping of the
//! whole channel or a disguised link. Slack's own rule is that `&`, `<` and `>` are control
//! characters in message text and must be sent as `&amp;`, `&lt;` and `&gt;`; once they are, no
//! mention, channel link or labelled link can be formed. Bare `@here`/`@channel`/`@everyone`
//! only ping when a message is sent with `link_names`/`parse=full` (we never set those), but we
//! also break them with an invisible WORD JOINER so a future change of those flags cannot turn
//! alert text into a ping.
//!
//! Every string that reaches a Slack text field goes through this module; nothing here may
//! ever pass text through unchanged because it "looks safe".

/// Invisible; stops Slack from reading `@here` as a keyword.
const WORD_JOINER: char = '\u{2060}';

const BROADCASTS: [&str; 3] = ["here", "channel", "everyone"];

/// Escapes `s` for any Slack text field parsed as `mrkdwn` (including a message's `text`).
pub fn escape_mrkdwn(s: &str) -> String {
    escape_truncated(s, usize::MAX)
}

/// Like [`escape_mrkdwn`], but the escaped result is at most `max` characters (Slack counts
/// characters), ending in `…` when it had to cut. Cutting happens between escape sequences,
/// never inside one, so the result never shows a broken `&am`.
pub fn escape_truncated(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max.saturating_mul(4)));
    let mut count = 0usize;
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let piece: std::borrow::Cow<'static, str> = match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '@' if starts_broadcast(&chars[i + 1..]) => format!("@{WORD_JOINER}").into(),
            // Control characters other than newline and tab have no business in a message and
            // some clients render them oddly.
            c if c.is_control() && c != '\n' && c != '\t' => " ".into(),
            c => c.to_string().into(),
        };
        let len = piece.chars().count();
        // Leave room for the ellipsis if anything follows.
        let reserve = usize::from(i + 1 < chars.len());
        if count + len + reserve > max {
            if max > 0 {
                out.push('…');
            }
            return out;
        }
        count += len;
        out.push_str(&piece);
    }
    out
}

fn starts_broadcast(rest: &[char]) -> bool {
    BROADCASTS
        .iter()
        .any(|word| word.len() <= rest.len() && word.chars().zip(rest.iter()).all(|(w, r)| r.to_ascii_lowercase() == w))
}

/// Escaped text inside a ``` block (for planned requests): escapes as usual and breaks any
/// triple backtick in the data so it cannot close the block early.
pub fn escape_code_block(s: &str, max: usize) -> String {
    let broken = s.replace("```", "`\u{200B}`\u{200B}`");
    escape_truncated(&broken, max)
}

/// A link Slack shows as `label`. Only for URLs floodgate itself produced (incident links,
/// approval pages): the URL must parse as http(s), and characters that would end the link
/// syntax early are percent-encoded. Returns `None` for anything else, so the caller shows
/// no link rather than a broken one.
pub fn link(url: &str, label: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let target = parsed.as_str().replace('|', "%7C").replace('<', "%3C").replace('>', "%3E").replace('&', "&amp;");
    // The label is text: `|` and `>` inside it must not end the construct.
    let label = escape_mrkdwn(label).replace('|', "¦");
    Some(format!("<{target}|{label}>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_mrkdwn("a & b < c > d"), "a &amp; b &lt; c &gt; d");
        assert_eq!(escape_mrkdwn("<!channel> hi"), "&lt;!channel&gt; hi");
        assert_eq!(escape_mrkdwn("<https://evil.example|click>"), "&lt;https://evil.example|click&gt;");
        assert_eq!(escape_mrkdwn("<@U123>"), "&lt;@U123&gt;");
    }

    #[test]
    fn bare_broadcasts_are_broken_invisibly() {
        let e = escape_mrkdwn("ping @here and @Channel, mail a@herenow.io");
        assert!(!e.contains("@here"), "{e:?}");
        assert!(!e.to_lowercase().contains("@channel"), "{e:?}");
        assert!(e.contains("@\u{2060}here"));
        // Only the broadcast words are touched.
        assert_eq!(escape_mrkdwn("bob@example.com"), "bob@example.com");
    }

    #[test]
    fn truncation_never_splits_an_entity_and_counts_characters() {
        let e = escape_truncated("&&&&", 7);
        assert_eq!(e, "&amp;…");
        assert!(escape_truncated("héllo wörld", 5).chars().count() <= 5);
        assert_eq!(escape_truncated("abc", 3), "abc");
        assert_eq!(escape_truncated("abcd", 3), "ab…");
    }

    #[test]
    fn code_blocks_cannot_be_closed_by_data() {
        let e = escape_code_block("x```<!here>", 100);
        assert!(!e.contains("```"));
        assert!(e.contains("&lt;!here&gt;"));
    }

    #[test]
    fn links_are_only_built_from_http_urls_and_cannot_break_out() {
        assert_eq!(
            link("https://fg.example/i/1?a=1&b=2", "Open").unwrap(),
            "<https://fg.example/i/1?a=1&amp;b=2|Open>"
        );
        let l = link("https://fg.example/x|<!channel>", "a|b>").unwrap();
        assert!(!l[1..l.len() - 1].contains('<') && l.matches('|').count() == 1, "{l}");
        assert!(link("javascript:alert(1)", "x").is_none());
        assert!(link("not a url", "x").is_none());
    }
}
