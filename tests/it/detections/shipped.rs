//! Each shipped detection on the simulator, over both fixture files: exactly the expected
//! findings (attacks) and nothing for the benign rows beside them; the SQL travels unchanged
//! with typed `:since`/`:until` parameters.

use super::{EXPECTED, Lakehouse, finding, ms, shipped_detections};
use floodgate::ingest::detections::finding::Window;
use floodgate::ingest::detections::{Job, poller};
use std::sync::Arc;

#[tokio::test]
async fn shipped_detections_find_the_attacks_and_nothing_else() {
    let lake = Lakehouse::start().await;
    let dbx = lake.databricks();
    let window = Window { since: ms("2026-08-01T00:00:00Z"), until: ms("2026-09-03T00:00:00Z") };
    let mut found = Vec::new();
    let detections = shipped_detections();
    assert_eq!(detections.len(), 12, "a new shipped detection needs its expectations here");
    for d in detections {
        let id = d.id.clone();
        let job = Job { detection: Arc::new(d), workspace: "prod".into() };
        let (result, alerts) = poller::evaluate(&dbx, &job, "databricks-detection", window, window, window.until)
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(result.rows.len(), alerts.len());
        for a in &alerts {
            assert_eq!(a.rule.as_deref(), Some(format!("detection:{id}").as_str()));
            assert_eq!(a.workspace_id.as_deref(), Some(super::WORKSPACE_ID), "{id}: alerts carry the row's workspace");
            assert!(a.external_id.starts_with(&format!("{id}:")), "{}", a.external_id);
            assert!(!a.title.is_empty() && !a.title.contains("{{"), "{id}: title {:?}", a.title);
            found.push(finding(&id, &a.to_json()));
        }
    }
    found.sort();
    assert_eq!(found, EXPECTED, "findings over both fixture files");
}

#[tokio::test]
async fn statements_carry_the_window_as_typed_parameters_never_in_the_text() {
    let lake = Lakehouse::start().await;
    let dbx = lake.databricks();
    let d = shipped_detections().into_iter().find(|d| d.id == "failed-logins").unwrap();
    let sql = d.sql.clone();
    let job = Job { detection: Arc::new(d), workspace: "prod".into() };
    let window = Window { since: ms("2026-09-01T03:00:00Z"), until: ms("2026-09-01T04:00:00Z") };
    lake.sim.calls().clear();
    let (_, alerts) = poller::evaluate(&dbx, &job, "databricks-detection", window, window, window.until).await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].fields["failures"], 6);
    let sent = lake.sim.calls().matching("POST", "/api/2.0/sql/statements");
    assert_eq!(sent.len(), 1);
    let body = sent[0].json().unwrap();
    assert_eq!(body["statement"], sql.as_str(), "the SQL is sent exactly as written");
    let mut params: Vec<(String, String, String)> = body["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let s = |k: &str| p[k].as_str().unwrap_or("").to_string();
            (s("name"), s("type"), s("value"))
        })
        .collect();
    params.sort();
    assert_eq!(
        params,
        vec![
            ("since".into(), "TIMESTAMP".into(), "2026-09-01T03:00:00Z".into()),
            ("since_date".into(), "DATE".into(), "2026-09-01".into()),
            ("threshold".into(), "INT".into(), "5".into()),
            ("until".into(), "TIMESTAMP".into(), "2026-09-01T04:00:00Z".into()),
            ("until_date".into(), "DATE".into(), "2026-09-01".into()),
        ]
    );
}
