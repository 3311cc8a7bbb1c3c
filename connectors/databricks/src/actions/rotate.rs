//! `service_principal.rotate_secret`: give a service principal a new OAuth secret, deliver it,
//! prove it works, then delete the old ones.
//!
//! Which principals may be rotated, and where each one's new secret goes, is configuration
//! (`[connectors.databricks.service_principals.<name>]`), never step input: an alert must not be
//! able to send a principal's secret somewhere of its choosing.
//!
//! The secret value lives only in memory for the duration of one `execute`; it is never logged,
//! never returned, never put in refs or errors. Progress is checkpointed in refs as the stage
//! plus secret *ids*:
//!
//! 1. `listed`: the ids of the secrets that existed before (the "old" ones);
//! 2. `created`: a new secret exists (its value is in memory only);
//! 3. `delivered`: the value is in the destination;
//! 4. `verified`: a token was obtained with it;
//! 5. `done`: the old secrets are deleted.
//!
//! Resuming after a crash: at `created` or `delivered` the value is gone, so the new secret is
//! deleted and another one created (floodgate needs no READ access to the destination that
//! way); at `listed`, a secret that appeared since the listing was created by the crashed
//! attempt and its value is lost, so it is deleted before creating another. Old secrets are
//! deleted only from `verified`, so the principal always keeps a working secret, and the count
//! never exceeds old + 1 — within the limit of five secrets per principal, which is checked
//! before creating.

use super::common::{load_ref, plan_of, save_ref, seg};
use crate::Databricks;
use crate::client::{Target, fetch_token, token_request};
use crate::config::{Destination, ServicePrincipalConfig, SpLevel};
use floodgate_sdk::http::{Replay, Request};
use floodgate_sdk::{ActionCall, ActionError, ActionOutput, Plan, Secret};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

const NS: &str = "databricks.service_principal.rotate_secret";
/// Databricks allows at most five OAuth secrets per service principal.
pub const MAX_SECRETS: usize = 5;
const VERIFY_ATTEMPTS: u32 = 4;

/// Input of `service_principal.rotate_secret`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateInput {
    /// A principal configured under [connectors.databricks.service_principals]: its name there,
    /// its application id, or its numeric id.
    pub service_principal: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
enum Checkpoint {
    Listed { old_secret_ids: Vec<String> },
    Created { old_secret_ids: Vec<String>, new_secret_id: String },
    Delivered { old_secret_ids: Vec<String>, new_secret_id: String },
    Verified { old_secret_ids: Vec<String>, new_secret_id: String },
    Done { old_secret_ids: Vec<String>, new_secret_id: String },
}

#[derive(Deserialize)]
struct SecretInfo {
    id: String,
}

#[derive(Deserialize)]
struct SecretPage {
    #[serde(default)]
    secrets: Vec<SecretInfo>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// The create answer; `secret` is moved into a `Secret` at once.
#[derive(Deserialize)]
struct Created {
    id: String,
    secret: String,
}

fn find_config<'a>(db: &'a Databricks, wanted: &str) -> Result<&'a ServicePrincipalConfig, ActionError> {
    let w = wanted.trim();
    db.config
        .service_principals
        .iter()
        .find(|s| s.name == w || s.application_id.eq_ignore_ascii_case(w) || s.id == w)
        .ok_or_else(|| {
            let known: Vec<&str> = db.config.service_principals.iter().map(|s| s.name.as_str()).collect();
            ActionError::permanent(
                "unknown_service_principal",
                format!(
                    "service principal {w:?} is not configured for rotation (configured: {}); add it under [connectors.databricks.service_principals] with its destination",
                    if known.is_empty() { "none".into() } else { known.join(", ") }
                ),
            )
        })
}

fn sp_target<'a>(db: &'a Databricks, sp: &ServicePrincipalConfig) -> Result<&'a Target, ActionError> {
    match &sp.level {
        SpLevel::Account => db.account_target(),
        SpLevel::Workspace(w) => db.workspace_target(Some(w)),
    }
}

fn secrets_path(t: &Target, sp_id: &str) -> String {
    match t.account_id() {
        Some(a) => format!("/api/2.0/accounts/{a}/servicePrincipals/{}/credentials/secrets", seg(sp_id)),
        None => format!("/api/2.0/accounts/servicePrincipals/{}/credentials/secrets", seg(sp_id)),
    }
}

fn list_request(t: &Target, sp_id: &str, page_token: Option<&str>) -> Request {
    let mut url = format!("{}?page_size=100", t.url(&secrets_path(t, sp_id)));
    if let Some(p) = page_token {
        url.push_str(&format!("&page_token={}", super::common::q(p)));
    }
    Request::get(url)
}

fn create_request(t: &Target, sp: &ServicePrincipalConfig) -> Request {
    let body = match sp.secret_lifetime_seconds {
        Some(s) => json!({"lifetime": format!("{s}s")}),
        None => json!({}),
    };
    // Not idempotent: replayed only when Databricks certainly did not process it; a secret
    // created by a lost attempt is found as an orphan on resume and deleted.
    Request::post(t.url(&secrets_path(t, &sp.id))).json(body).replay(Replay::OnlyUnprocessed)
}

fn delete_request(t: &Target, sp_id: &str, secret_id: &str) -> Request {
    Request::delete(t.url(&format!("{}/{}", secrets_path(t, sp_id), seg(secret_id))))
}

fn put_request(t: &Target, scope: &str, key: &str, value: &Secret) -> Request {
    Request::post(t.url("/api/2.0/secrets/put"))
        .json(json!({"scope": scope, "key": key, "string_value": value.expose()}))
        // `put` overwrites, so sending it twice is the same as once.
        .replay(Replay::Safe)
}

pub fn plan(db: &Databricks, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
    let input: RotateInput = call.parse_input()?;
    if !db.config.configured {
        return Ok(Plan::new(format!(
            "rotate the OAuth secret of service principal {:?} (needs [connectors.databricks.service_principals])",
            input.service_principal
        )));
    }
    let sp = find_config(db, &input.service_principal)?;
    let t = sp_target(db, sp)?;
    let placeholder = Secret::new("[new secret]");
    let list = list_request(t, &sp.id, None);
    let create = create_request(t, sp);
    let verify = token_request(&t.token_url(), &sp.application_id, &placeholder);
    let delete = delete_request(t, &sp.id, "{old secret id}");
    let deliver = match &sp.deliver_to {
        Destination::SecretScope { workspace, scope, key } => {
            let wt = db.workspace_target(Some(workspace))?;
            Some(put_request(wt, scope, key, &placeholder))
        }
        Destination::File { .. } => None,
    };
    let mut reqs = vec![&list, &create];
    if let Some(d) = &deliver {
        reqs.push(d);
    }
    reqs.push(&verify);
    reqs.push(&delete);
    Ok(plan_of(
        format!(
            "create a new OAuth secret for service principal {} ({}) in {}, write it to {}, verify it by obtaining a token, then delete its old secrets",
            sp.name,
            sp.application_id,
            t.describe(),
            sp.deliver_to
        ),
        &reqs,
    ))
}

async fn list_secret_ids(t: &Target, sp_id: &str) -> Result<BTreeSet<String>, ActionError> {
    let mut ids = BTreeSet::new();
    let mut token: Option<String> = None;
    // The API says to follow next_page_token rather than count entries.
    for _ in 0..100 {
        let page: SecretPage = t.call_json(&list_request(t, sp_id, token.as_deref())).await?;
        ids.extend(page.secrets.into_iter().map(|s| s.id));
        match page.next_page_token.filter(|p| !p.is_empty()) {
            Some(p) => token = Some(p),
            None => return Ok(ids),
        }
    }
    Err(ActionError::permanent("bad_response", "the secrets list did not end after 100 pages"))
}

async fn delete_secret(t: &Target, sp_id: &str, secret_id: &str) -> Result<(), ActionError> {
    let req = delete_request(t, sp_id, secret_id);
    let resp = t.send(&req).await?;
    if resp.is_success() || resp.status == 404 { Ok(()) } else { Err(crate::error::api_error(&t.what(&req), &resp)) }
}

async fn create_secret(t: &Target, sp: &ServicePrincipalConfig) -> Result<(String, Secret), ActionError> {
    let req = create_request(t, sp);
    let resp = t.call(&req).await?;
    // Never quote this body in an error: it holds the secret.
    let created: Created = serde_json::from_slice(&resp.body).map_err(|_| {
        ActionError::permanent("bad_response", format!("{} answered without a secret id and value", t.what(&req)))
    })?;
    Ok((created.id, Secret::new(created.secret)))
}

async fn deliver(db: &Databricks, sp: &ServicePrincipalConfig, value: &Secret) -> Result<(), ActionError> {
    match &sp.deliver_to {
        Destination::SecretScope { workspace, scope, key } => {
            let wt = db.workspace_target(Some(workspace))?;
            wt.call(&put_request(wt, scope, key, value)).await.map(|_| ())
        }
        Destination::File { path } => {
            let path = path.clone();
            let bytes = value.expose().as_bytes().to_vec();
            tokio::task::spawn_blocking(move || write_private_file(&path, &bytes)).await.map_err(|e| {
                ActionError::retryable("file_write", format!("writing the secret file was interrupted: {e}"))
            })?
        }
    }
}

/// Writes `bytes` to `path` with mode 0600, atomically (temp file + rename + fsync).
#[cfg(unix)]
fn write_private_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), ActionError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |what: &str, e: std::io::Error| {
        ActionError::permanent(
            "file_write",
            format!("cannot {what} {}: {e} (check the directory exists and floodgate may write it)", path.display()),
        )
    };
    let dir = path.parent().ok_or_else(|| fail("find the directory of", std::io::Error::other("no parent")))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("secret");
    let tmp = dir.join(format!(".{name}.floodgate-{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| fail("create a temporary file next to", e))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| fail("restrict permissions of the file for", e))?;
    f.write_all(bytes).map_err(|e| fail("write", e))?;
    f.sync_all().map_err(|e| fail("flush", e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        fail("replace", e)
    })?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(not(unix))]
fn write_private_file(path: &std::path::Path, _bytes: &[u8]) -> Result<(), ActionError> {
    Err(ActionError::permanent(
        "file_write",
        format!("cannot write {} with mode 0600 on this platform", path.display()),
    ))
}

/// Obtains a token with the new secret; retried briefly, since a new secret may take a moment
/// to be accepted everywhere.
async fn verify(t: &Target, sp: &ServicePrincipalConfig, value: &Secret, new_id: &str) -> Result<(), ActionError> {
    let mut delay = Duration::from_millis(250);
    let mut last = None;
    for attempt in 1..=VERIFY_ATTEMPTS {
        match fetch_token(t.http(), &t.token_url(), &sp.application_id, value).await {
            Ok(_) => return Ok(()),
            Err(e) => {
                tracing::debug!(attempt, code = e.code(), "new service principal secret not accepted yet");
                last = Some(e);
            }
        }
        if attempt < VERIFY_ATTEMPTS {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    let why = last.map(|e| e.message().to_string()).unwrap_or_default();
    Err(ActionError::retryable(
        "rotation_verify_failed",
        format!(
            "the new secret {new_id} of service principal {} could not obtain a token ({why}); its old secrets were kept, and a retry replaces the new secret",
            sp.name
        ),
    ))
}

pub async fn execute(db: &Databricks, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
    let input: RotateInput = call.parse_input()?;
    let sp = find_config(db, &input.service_principal)?;
    let t = sp_target(db, sp)?;
    let own = db.config.workspaces.iter().map(|w| &w.auth).chain(db.config.account.iter().map(|a| &a.auth));
    for auth in own {
        if let crate::config::AuthConfig::OAuthM2m { client_id, .. } = auth
            && client_id.eq_ignore_ascii_case(&sp.application_id)
        {
            return Err(ActionError::permanent(
                "refused_self",
                format!(
                    "service principal {} is the identity floodgate authenticates as; rotating it would cut floodgate off — rotate it by hand",
                    sp.name
                ),
            ));
        }
    }

    let mut cp: Option<Checkpoint> = load_ref(call, NS).await?;
    let mut notes = Vec::new();
    // Each turn advances one stage; the bound only guards against a logic loop.
    for _ in 0..10 {
        match cp.clone() {
            None => {
                let ids = list_secret_ids(t, &sp.id).await?;
                if ids.len() >= MAX_SECRETS {
                    return Err(limit_error(sp, ids.len()));
                }
                cp = Some(Checkpoint::Listed { old_secret_ids: ids.into_iter().collect() });
                save_ref(call, NS, &cp).await?;
            }
            Some(Checkpoint::Listed { old_secret_ids }) => {
                let current = list_secret_ids(t, &sp.id).await?;
                let old: BTreeSet<String> = old_secret_ids.iter().cloned().collect();
                for orphan in current.difference(&old) {
                    // Created by an attempt that crashed before checkpointing: its value is lost.
                    delete_secret(t, &sp.id, orphan).await?;
                    notes.push(format!("deleted secret {orphan}, left unusable by an interrupted attempt"));
                }
                let remaining = current.intersection(&old).count();
                if remaining >= MAX_SECRETS {
                    return Err(limit_error(sp, remaining));
                }
                let (new_id, value) = create_secret(t, sp).await?;
                cp =
                    Some(Checkpoint::Created { old_secret_ids: old_secret_ids.clone(), new_secret_id: new_id.clone() });
                save_ref(call, NS, &cp).await?;
                if let Err(e) = deliver(db, sp, &value).await {
                    // Undelivered, the secret is useless: remove it now rather than on a retry
                    // that may never come (a permanent error such as a missing scope).
                    if delete_secret(t, &sp.id, &new_id).await.is_ok() {
                        save_ref(call, NS, &Some(Checkpoint::Listed { old_secret_ids })).await?;
                    }
                    return Err(e);
                }
                cp = Some(Checkpoint::Delivered {
                    old_secret_ids: old_secret_ids.clone(),
                    new_secret_id: new_id.clone(),
                });
                save_ref(call, NS, &cp).await?;
                verify(t, sp, &value, &new_id).await?;
                drop(value);
                cp = Some(Checkpoint::Verified { old_secret_ids, new_secret_id: new_id });
                save_ref(call, NS, &cp).await?;
            }
            Some(Checkpoint::Created { old_secret_ids, new_secret_id })
            | Some(Checkpoint::Delivered { old_secret_ids, new_secret_id }) => {
                // The value died with the attempt that created it: replace the secret.
                delete_secret(t, &sp.id, &new_secret_id).await?;
                notes.push(format!(
                    "replaced secret {new_secret_id}: an interrupted attempt lost its value before it was verified"
                ));
                cp = Some(Checkpoint::Listed { old_secret_ids });
                save_ref(call, NS, &cp).await?;
            }
            Some(Checkpoint::Verified { old_secret_ids, new_secret_id }) => {
                for id in old_secret_ids.iter().filter(|id| **id != new_secret_id) {
                    delete_secret(t, &sp.id, id).await?;
                }
                cp = Some(Checkpoint::Done { old_secret_ids, new_secret_id });
                save_ref(call, NS, &cp).await?;
            }
            Some(Checkpoint::Done { old_secret_ids, new_secret_id }) => {
                let mut out = ActionOutput::new(json!({
                    "service_principal": sp.name,
                    "service_principal_id": sp.id,
                    "application_id": sp.application_id,
                    "new_secret_id": new_secret_id,
                    "deleted_secret_ids": old_secret_ids,
                    "destination": sp.deliver_to.to_string(),
                    "verified": true,
                }))
                .with_note(format!(
                    "rotated the OAuth secret of {}: new secret {new_secret_id} written to {} and verified; {} old secret(s) deleted",
                    sp.name,
                    sp.deliver_to,
                    old_secret_ids.len()
                ));
                out.notes.extend(notes);
                return Ok(out);
            }
        }
    }
    Err(ActionError::permanent("rotation_stuck", "the rotation did not converge; see the refs checkpoint"))
}

fn limit_error(sp: &ServicePrincipalConfig, n: usize) -> ActionError {
    ActionError::permanent(
        "secret_limit",
        format!(
            "service principal {} already has {n} OAuth secrets (Databricks allows {MAX_SECRETS}); delete an unused one so a new secret can be created without removing a working one first",
            sp.name
        ),
    )
}
