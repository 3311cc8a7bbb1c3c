//! `jira.issue.transition`: resolve a transition by name at run time, record the intent, then
//! move the issue once.

use super::*;

impl Jira {
    fn parse_transition(call: &ActionCall<'_>) -> Result<(TransitionInput, Target), ActionError> {
        let input: TransitionInput = call.parse_input()?;
        if input.transition.trim().is_empty() {
            return Err(invalid("transition must name a transition, e.g. \"Done\""));
        }
        let t = target(input.issue.as_deref())?;
        Ok((input, t))
    }

    fn transition_body(&self, call: &ActionCall<'_>, input: &TransitionInput, id: &str) -> Value {
        let mut body = json!({"transition": {"id": id}});
        if let Some(r) = input.resolution.as_deref().filter(|r| !r.trim().is_empty()) {
            body["fields"] = json!({"resolution": {"name": r}});
        }
        if let Some(c) = input.comment.as_deref().filter(|c| !c.trim().is_empty()) {
            body["update"] = json!({"comment": [{"add": {"body": self.rich_text(call, c, false)}}]});
        }
        body
    }

    pub(crate) fn plan_transition(&self, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
        let (input, t) = Self::parse_transition(call)?;
        let issue = match t {
            Target::Key(k) => k,
            Target::IncidentIssue => Self::placeholder(call),
        };
        let id = format!("<id of transition {:?}>", input.transition);
        Ok(Plan {
            summary: format!("move Jira issue {issue} through transition {:?}", input.transition),
            requests: vec![
                self.client.transitions(&issue).planned(),
                self.client.do_transition(&issue, self.transition_body(call, &input, &id)).planned(),
            ],
        })
    }

    pub(crate) async fn transition(&self, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
        let (input, t) = Self::parse_transition(call)?;
        let issue = self.resolve(call, t).await?;
        let _guard = self.locks.lock(&format!("issue:{}", issue.to_ascii_uppercase())).await;
        let key = call.idempotency_key;
        let intent = call.refs.get(NS_TRANSITION, key).await?;
        if let Some(i) = &intent
            && i.get("state").and_then(Value::as_str) == Some("done")
        {
            return Ok(ActionOutput::new(i.get("output").cloned().unwrap_or(Value::Null)));
        }
        let status =
            |i: &Option<Value>, k: &str| i.as_ref().and_then(|v| v.get(k)).and_then(Value::as_str).map(str::to_string);
        if let Some(to) = status(&intent, "to_status") {
            // An earlier attempt sent the POST; if it took effect, the issue is there already.
            let now = self.current_status(&issue).await?;
            if now.eq_ignore_ascii_case(&to) {
                let output = json!({"issue": issue, "transition": input.transition,
                    "transition_id": status(&intent, "transition_id"), "status": now, "changed": true});
                call.refs.put(NS_TRANSITION, key, &json!({"state": "done", "output": output})).await?;
                return Ok(ActionOutput::new(output)
                    .with_note(format!("{issue} already moved to {now} by an earlier attempt")));
            }
        }
        let mut retried_conflict = false;
        loop {
            let list: TransitionList = self.client.send(&self.client.transitions(&issue)).await?.json()?;
            let Some(tr) = pick_transition(&list.transitions, &input.transition) else {
                let now = self.current_status(&issue).await?;
                if now.eq_ignore_ascii_case(&input.transition) {
                    let output = json!({"issue": issue, "transition": input.transition,
                        "transition_id": null, "status": now, "changed": false});
                    call.refs.put(NS_TRANSITION, key, &json!({"state": "done", "output": output})).await?;
                    return Ok(ActionOutput::new(output).with_note(format!("{issue} is already in status {now}")));
                }
                let names: Vec<String> = list
                    .transitions
                    .iter()
                    .filter(|t| t.is_available != Some(false))
                    .map(|t| format!("{:?}", t.name))
                    .collect();
                return Err(ActionError::permanent(
                    "transition_not_found",
                    format!(
                        "transition {:?} is not available for {issue} (status {now:?}); available: {}",
                        input.transition,
                        if names.is_empty() { "none".to_string() } else { names.join(", ") }
                    ),
                ));
            };
            let to = tr.to.as_ref().map(|t| t.name.clone()).unwrap_or_default();
            call.refs
                .put(
                    NS_TRANSITION,
                    key,
                    &json!({"state": "sent", "issue": issue, "transition_id": tr.id, "to_status": to}),
                )
                .await?;
            let req = self.client.do_transition(&issue, self.transition_body(call, &input, &tr.id));
            let resp = self.client.send_raw(&req).await?;
            if resp.status == 409 && !retried_conflict {
                // "Conflicting update": another change raced ours; the workflow may have moved,
                // so resolve the name again and try once more.
                retried_conflict = true;
                continue;
            }
            self.client.check(&req, resp)?;
            let output =
                json!({"issue": issue, "transition": tr.name, "transition_id": tr.id, "status": to, "changed": true});
            call.refs.put(NS_TRANSITION, key, &json!({"state": "done", "output": output})).await?;
            return Ok(ActionOutput::new(output).with_note(format!("moved Jira issue {issue} to {to} ({})", tr.name)));
        }
    }

    async fn current_status(&self, issue: &str) -> Result<String, ActionError> {
        let v: Value = self.client.send(&self.client.get_issue(issue)).await?.json()?;
        Ok(v.pointer("/fields/status/name").and_then(Value::as_str).unwrap_or_default().to_string())
    }
}

/// The transition called `wanted` (case-insensitive), else the one leading to a status of
/// that name. Unavailable transitions (`isAvailable: false`) are never picked.
fn pick_transition<'a>(list: &'a [Transition], wanted: &str) -> Option<&'a Transition> {
    let wanted = wanted.trim();
    let usable = || list.iter().filter(|t| t.is_available != Some(false));
    usable()
        .find(|t| t.name.trim().eq_ignore_ascii_case(wanted))
        .or_else(|| usable().find(|t| t.to.as_ref().is_some_and(|to| to.name.trim().eq_ignore_ascii_case(wanted))))
}
#[derive(Debug, Deserialize)]
struct TransitionList {
    #[serde(default)]
    transitions: Vec<Transition>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Transition {
    id: String,
    name: String,
    #[serde(default)]
    to: Option<StatusRef>,
    #[serde(default)]
    is_available: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct StatusRef {
    name: String,
}
