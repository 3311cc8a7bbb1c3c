//! docs/connectors.md matches the compiled-in action catalog.

/// docs/connectors.md lists every action of the compiled-in catalog, with its risk class,
/// revertibility and summary exactly as the connectors declare them. On a mismatch it prints
/// the rows the catalog gives (the idempotency column is written by hand).
#[test]
fn the_connectors_index_matches_the_catalog() {
    let doc = std::fs::read_to_string(crate::common::repo().join("docs/connectors.md")).expect("docs/connectors.md");
    // Action rows: the first cell is a `<connector>.<action>` name.
    let rows: Vec<&str> =
        doc.lines().filter(|l| l.starts_with("| `") && l.split('|').nth(1).is_some_and(|c| c.contains('.'))).collect();
    let mut wanted = Vec::new();
    let mut wrong = Vec::new();
    for kind in floodgate::connectors::kinds() {
        for a in kind.actions() {
            let name = format!("{}.{}", kind.name(), a.name);
            let head = format!("| `{name}` | {} | {} |", a.risk, if a.revertible { "yes" } else { "no" });
            // Markdown would read `<name>` as an HTML tag: the page escapes it.
            let summary = a.summary.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
            let tail = format!(" | {summary} |");
            let row = rows.iter().find(|r| r.starts_with(&format!("| `{name}` |")));
            if !row.is_some_and(|r| r.starts_with(&head) && r.ends_with(&tail)) {
                wrong.push(format!("{name}: found {row:?}"));
            }
            let handle = if a.pure { "pure".to_string() } else { a.idempotency.clone() };
            wanted.push(format!("{head} {handle}{tail}"));
        }
    }
    assert!(
        wrong.is_empty() && rows.len() == wanted.len(),
        "docs/connectors.md disagrees with the catalog ({} rows for {} actions):\n{}\n\nThe catalog's rows:\n{}",
        rows.len(),
        wanted.len(),
        wrong.join("\n"),
        wanted.join("\n")
    );
}
