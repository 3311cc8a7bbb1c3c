//! `jira.issue.comment`: post a comment carrying floodgate's hidden property, once per
//! idempotency key.

use super::*;

impl Jira {
    fn comment_request(&self, call: &ActionCall<'_>, input: &CommentInput, issue: &str) -> Request {
        let body = json!({
            "body": self.rich_text(call, &input.body, input.include_link.unwrap_or(true)),
            "properties": [{
                "key": COMMENT_PROPERTY,
                "value": {"idempotency_key": call.idempotency_key, "incident_id": call.ctx.incident_id},
            }],
        });
        self.client.add_comment(issue, body)
    }

    fn parse_comment(call: &ActionCall<'_>) -> Result<(CommentInput, Target), ActionError> {
        let input: CommentInput = call.parse_input()?;
        if input.body.trim().is_empty() {
            return Err(invalid("body must not be empty"));
        }
        let t = target(input.issue.as_deref())?;
        Ok((input, t))
    }

    pub(crate) fn plan_comment(&self, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
        let (input, t) = Self::parse_comment(call)?;
        let issue = match t {
            Target::Key(k) => k,
            Target::IncidentIssue => Self::placeholder(call),
        };
        let req = self.comment_request(call, &input, &issue);
        Ok(Plan { summary: format!("comment on Jira issue {issue}"), requests: vec![req.planned()] })
    }

    pub(crate) async fn comment(&self, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
        let (input, t) = Self::parse_comment(call)?;
        let issue = self.resolve(call, t).await?;
        let _guard = self.locks.lock(&format!("issue:{}", issue.to_ascii_uppercase())).await;
        let out = |id: &str, created: bool| json!({"issue": issue, "comment_id": id, "url": format!("{}?focusedCommentId={id}", self.client.browse_url(&issue)), "created": created});
        if let Some(r) = call.refs.get(NS_COMMENT, call.idempotency_key).await?
            && let Some(id) = r.get("id").and_then(Value::as_str)
        {
            return Ok(ActionOutput::new(out(id, false)));
        }
        // Attempt 1 cannot have posted before; later attempts may have, with the answer lost.
        if call.ctx.attempt != 1
            && let Some(id) = self.find_comment(&issue, call.idempotency_key).await?
        {
            call.refs.put(NS_COMMENT, call.idempotency_key, &json!({"issue": issue, "id": id})).await?;
            return Ok(ActionOutput::new(out(&id, false))
                .with_note(format!("comment {id} on {issue} was already posted by an earlier attempt")));
        }
        let resp = self.client.send(&self.comment_request(call, &input, &issue)).await?;
        let posted: Posted = resp.json()?;
        call.refs.put(NS_COMMENT, call.idempotency_key, &json!({"issue": issue, "id": posted.id})).await?;
        Ok(ActionOutput::new(out(&posted.id, true)).with_note(format!("commented on Jira issue {issue}")))
    }

    /// The id of a recent comment on `issue` that carries floodgate's property for `key`.
    async fn find_comment(&self, issue: &str, key: &str) -> Result<Option<String>, ActionError> {
        let page: CommentPage = self.client.send(&self.client.recent_comments(issue)).await?.json()?;
        let ids: Vec<i64> = page.comments.iter().filter_map(|c| c.id.parse().ok()).collect();
        if ids.is_empty() {
            return Ok(None);
        }
        let listed: CommentList = self.client.send(&self.client.comments_with_properties(&ids)).await?.json()?;
        Ok(listed
            .values
            .into_iter()
            .find(|c| {
                c.properties.iter().any(|p| {
                    p.key == COMMENT_PROPERTY && p.value.get("idempotency_key").and_then(Value::as_str) == Some(key)
                })
            })
            .map(|c| c.id))
    }
}

#[derive(Debug, Deserialize)]
struct Posted {
    id: String,
}
#[derive(Debug, Deserialize)]
struct CommentPage {
    #[serde(default)]
    comments: Vec<Posted>,
}

#[derive(Debug, Deserialize)]
struct CommentList {
    #[serde(default)]
    values: Vec<ListedComment>,
}

#[derive(Debug, Deserialize)]
struct ListedComment {
    id: String,
    #[serde(default)]
    properties: Vec<Property>,
}

#[derive(Debug, Deserialize)]
struct Property {
    key: String,
    #[serde(default)]
    value: Value,
}
