//! `jira.issue.create`: build the issue once for plan and execute; on execute, reuse the
//! incident's issue from refs or from a label search before creating one.

use super::*;

/// What `issue.create` will send, computed once for both `plan` and `execute`.
pub struct CreateDraft {
    pub label: String,
    pub search: Request,
    pub jql: String,
    pub create: Request,
    pub summary: String,
    pub project: String,
    pub issue_type: String,
}

const RESERVED_FIELDS: [&str; 5] = ["project", "issuetype", "summary", "description", "labels"];

impl Jira {
    pub(crate) fn draft_create(&self, call: &ActionCall<'_>) -> Result<CreateDraft, ActionError> {
        let input: CreateInput = call.parse_input()?;
        let incident = self.incident_id(call)?;
        let s = &self.client.settings;
        let label = content::label_for(&s.label_prefix, incident);
        let project = input.project.clone().unwrap_or_else(|| s.project.clone());
        let issue_type = input.issue_type.clone().unwrap_or_else(|| s.issue_type.clone());
        let summary = input
            .summary
            .as_deref()
            .map(|t| content::one_line(t, content::SUMMARY_MAX))
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| content::default_summary(call.ctx));
        let mut labels = vec![label.clone()];
        for l in &input.labels {
            if l.is_empty() || l.chars().any(char::is_whitespace) || l.len() > 255 {
                return Err(invalid(format!("label {l:?} is not a Jira label (no spaces, 1-255 characters)")));
            }
            if !labels.contains(l) {
                labels.push(l.clone());
            }
        }
        let evidence = input.include_evidence.unwrap_or(true);
        let description = match s.flavor {
            Flavor::Cloud => {
                content::description_adf(call.ctx, input.description.as_deref(), evidence, &label).to_value()
            }
            Flavor::DataCenter => {
                Value::String(content::description_wiki(call.ctx, input.description.as_deref(), evidence, &label))
            }
        };
        let mut fields = Map::new();
        fields.insert("project".into(), json!({"key": project}));
        fields.insert("issuetype".into(), named(&issue_type));
        fields.insert("summary".into(), json!(summary));
        fields.insert("description".into(), description);
        fields.insert("labels".into(), json!(labels));
        let severity = content::severity(call.ctx);
        let priority = input.priority.clone().or_else(|| severity.and_then(|sev| s.priorities.get(&sev).cloned()));
        if let Some(p) = priority {
            fields.insert("priority".into(), named(&p));
        }
        for (fact, field) in &s.fields {
            if let Some(v) = content::fact(call.ctx, *fact) {
                fields.insert(field.clone(), json!(v));
            }
        }
        for (k, v) in &input.fields {
            if RESERVED_FIELDS.contains(&k.as_str()) {
                return Err(invalid(format!(
                    "fields.{k} is set by the connector; use the {} input instead",
                    if k == "issuetype" { "issue_type" } else { k }
                )));
            }
            fields.insert(k.clone(), v.clone());
        }
        let jql = format!("labels = {} ORDER BY created ASC", jql_string(&label));
        Ok(CreateDraft {
            search: self.client.search(&jql, &SearchPage::First),
            create: self.client.create_issue(json!({"fields": fields})),
            jql,
            label,
            summary,
            project,
            issue_type,
        })
    }

    pub(crate) fn plan_create(&self, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
        let d = self.draft_create(call)?;
        Ok(Plan {
            summary: format!(
                "open a Jira {} in {}: {:?} labelled {} (or reuse the incident's existing issue)",
                d.issue_type, d.project, d.summary, d.label
            ),
            requests: vec![d.search.planned(), d.create.planned()],
        })
    }

    fn issue_output(&self, key: &str, id: &str, label: &str, created: bool, found_by: Option<&str>) -> Value {
        json!({
            "key": key,
            "id": id,
            "url": self.client.browse_url(key),
            "label": label,
            "created": created,
            "found_by": found_by,
        })
    }

    pub(crate) async fn create(&self, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
        let d = self.draft_create(call)?;
        let incident = self.incident_id(call)?;
        let _guard = self.locks.lock(&format!("incident:{incident}")).await;
        if let Some(r) = call.refs.get(NS_ISSUE, incident).await?
            && let Some(key) = r.get("key").and_then(Value::as_str)
        {
            let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
            return Ok(ActionOutput::new(self.issue_output(key, id, &d.label, false, Some("refs")))
                .with_note(format!("incident already has Jira issue {key}")));
        }
        // The refs may have missed a create whose answer never arrived: ask Jira by label.
        let found = self.client.search_all(&d.jql, 100).await?;
        if let Some(first) = found.first() {
            self.record_issue(call, incident, &first.key, &first.id, &d.label).await?;
            let mut out = ActionOutput::new(self.issue_output(&first.key, &first.id, &d.label, false, Some("search")))
                .with_note(format!("found Jira issue {} by label {}; not creating another", first.key, d.label));
            if found.len() > 1 {
                let keys: Vec<&str> = found.iter().map(|f| f.key.as_str()).collect();
                out = out.with_note(format!(
                    "{} issues carry label {}: {}; using the oldest, {}",
                    found.len(),
                    d.label,
                    keys.join(", "),
                    first.key
                ));
            }
            return Ok(out);
        }
        let resp = self.client.send(&d.create).await?;
        let created: Created = resp.json()?;
        self.record_issue(call, incident, &created.key, &created.id, &d.label).await?;
        Ok(ActionOutput::new(self.issue_output(&created.key, &created.id, &d.label, true, None))
            .with_note(format!("opened Jira issue {}", created.key)))
    }
}

#[derive(Debug, Deserialize)]
struct Created {
    id: String,
    key: String,
}
