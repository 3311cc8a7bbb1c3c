//! The timeline is the audit trail: an append-only, hash-chained list of everything floodgate
//! did and saw — alerts received, step intents and outcomes, approval requests, votes (who,
//! from where, why), automatic approvals, timeouts, escalations, reverts.
//!
//! Each entry has a sequence number without gaps and `hash = SHA-256(prev_hash, seq, at,
//! incident, run, step, kind, data)`. An entry is chained inside the transaction that records
//! the change it describes, holding the write lock (SQLite's single writer; an advisory lock on
//! PostgreSQL), so the chain has exactly one order. `verify` recomputes the chain and names the
//! first entry that was edited, inserted or deleted. Deleting entries at the very end leaves a
//! shorter valid chain: compare the head with one exported earlier (`audit export`, or the
//! `head` that `audit verify` prints) to catch that too.
//!
//! Nothing secret is ever written here: event data comes from the engine and from connector
//! notes, never from configuration.

use super::{Dialect, Result, Store, Tx};
use crate::args;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The hash "before" the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The advisory lock key serialising audit appends on PostgreSQL.
const AUDIT_LOCK: i64 = 0x666c_6f6f_6467_6174; // "floodgat"

#[allow(clippy::too_many_arguments)]
fn entry_hash(
    prev: &str,
    seq: i64,
    at: i64,
    incident: Option<&str>,
    run: Option<&str>,
    step: Option<&str>,
    kind: &str,
    data: &str,
) -> String {
    let mut h = Sha256::new();
    // Length-prefixed fields: no two different entries can produce the same byte stream.
    for field in [
        prev,
        &seq.to_string(),
        &at.to_string(),
        incident.unwrap_or("\u{0}"),
        run.unwrap_or("\u{0}"),
        step.unwrap_or("\u{0}"),
        kind,
        data,
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Appends one entry to the timeline and audit chain, inside the caller's transaction.
pub async fn append_event(
    tx: &mut Tx,
    at: i64,
    incident_id: Option<&str>,
    run_id: Option<&str>,
    step_id: Option<&str>,
    kind: &str,
    data: &Value,
) -> Result<()> {
    let (prev_seq, prev_hash) = take_head(tx).await?;
    let seq = prev_seq + 1;
    let data = data.to_string();
    let hash = entry_hash(&prev_hash, seq, at, incident_id, run_id, step_id, kind, &data);
    tx.exec(
        "INSERT INTO events (seq, at, incident_id, run_id, step_id, kind, data, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        args![seq, at, incident_id, run_id, step_id, kind, data, prev_hash, hash.clone()],
    )
    .await?;
    tx.audit_head = Some((seq, hash));
    Ok(())
}

/// The chain's head for this transaction: the one it already appended to, or (taking the
/// audit lock on PostgreSQL first) the last entry in the database.
async fn take_head(tx: &mut Tx) -> Result<(i64, String)> {
    if let Some(head) = tx.audit_head.take() {
        return Ok(head);
    }
    if tx.dialect() == Dialect::Postgres {
        tx.exec("SELECT pg_advisory_xact_lock($1)", args![AUDIT_LOCK]).await?;
    }
    Ok(match tx.opt("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1", vec![]).await? {
        Some(r) => (r.int("seq")?, r.text("hash")?),
        None => (0, GENESIS.to_string()),
    })
}

/// An entry for `append_events`.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub at: i64,
    pub incident_id: Option<String>,
    pub run_id: Option<String>,
    pub step_id: Option<String>,
    pub kind: &'static str,
    pub data: Value,
}

/// Appends entries in order, exactly as many `append_event` calls would, but chaining their
/// hashes in memory and inserting them with multi-row statements.
pub async fn append_events(tx: &mut Tx, events: Vec<NewEvent>) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let (mut seq, mut prev_hash) = take_head(tx).await?;
    let mut rows = Vec::with_capacity(events.len() * 9);
    for e in events {
        seq += 1;
        let data = e.data.to_string();
        let hash = entry_hash(
            &prev_hash,
            seq,
            e.at,
            e.incident_id.as_deref(),
            e.run_id.as_deref(),
            e.step_id.as_deref(),
            e.kind,
            &data,
        );
        rows.extend(args![seq, e.at, e.incident_id, e.run_id, e.step_id, e.kind, data, prev_hash, hash.clone()]);
        prev_hash = hash;
    }
    tx.exec_rows(
        "INSERT INTO events (seq, at, incident_id, run_id, step_id, kind, data, prev_hash, hash) VALUES ",
        "",
        9,
        rows,
    )
    .await?;
    tx.audit_head = Some((seq, prev_hash));
    Ok(())
}

/// One audit entry as exported.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub seq: i64,
    pub at: String,
    pub incident_id: Option<String>,
    pub run_id: Option<String>,
    pub step_id: Option<String>,
    pub kind: String,
    pub data: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Intact {
        entries: i64,
        head: String,
    },
    /// The first entry that does not fit the chain, and why.
    Broken {
        seq: i64,
        reason: String,
    },
}

const PAGE: i64 = 1000;

struct Raw {
    seq: i64,
    at: i64,
    incident: Option<String>,
    run: Option<String>,
    step: Option<String>,
    kind: String,
    data: String,
    prev_hash: String,
    hash: String,
}

impl Store {
    async fn audit_page(&self, after: i64) -> Result<Vec<Raw>> {
        self.all(
            "SELECT seq, at, incident_id, run_id, step_id, kind, data, prev_hash, hash FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
            args![after, PAGE],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Raw {
                seq: r.int("seq")?,
                at: r.int("at")?,
                incident: r.opt_text("incident_id")?,
                run: r.opt_text("run_id")?,
                step: r.opt_text("step_id")?,
                kind: r.text("kind")?,
                data: r.text("data")?,
                prev_hash: r.text("prev_hash")?,
                hash: r.text("hash")?,
            })
        })
        .collect()
    }

    /// Recomputes the whole chain.
    pub async fn verify_audit(&self) -> Result<Verdict> {
        let mut expected_seq = 1;
        let mut prev = GENESIS.to_string();
        loop {
            let page = self.audit_page(expected_seq - 1).await?;
            if page.is_empty() {
                return Ok(Verdict::Intact { entries: expected_seq - 1, head: prev });
            }
            for e in page {
                if e.seq != expected_seq {
                    return Ok(Verdict::Broken {
                        seq: expected_seq,
                        reason: format!("entry {expected_seq} is missing (deleted): the next entry is {}", e.seq),
                    });
                }
                if e.prev_hash != prev {
                    return Ok(Verdict::Broken {
                        seq: e.seq,
                        reason: format!(
                            "entry {} does not follow entry {}: an entry was deleted, inserted or edited before it",
                            e.seq,
                            e.seq - 1
                        ),
                    });
                }
                let h = entry_hash(
                    &e.prev_hash,
                    e.seq,
                    e.at,
                    e.incident.as_deref(),
                    e.run.as_deref(),
                    e.step.as_deref(),
                    &e.kind,
                    &e.data,
                );
                if h != e.hash {
                    return Ok(Verdict::Broken {
                        seq: e.seq,
                        reason: format!("entry {} ({}) was edited: its content does not match its hash", e.seq, e.kind),
                    });
                }
                prev = e.hash;
                expected_seq += 1;
            }
        }
    }

    /// Entries at or after `since` (Unix ms), oldest first, page by page.
    pub async fn export_audit(
        &self,
        since: Option<i64>,
        mut each: impl FnMut(Entry) -> std::io::Result<()>,
    ) -> Result<u64> {
        let mut after = 0;
        let mut n = 0;
        loop {
            let page = self.audit_page(after).await?;
            if page.is_empty() {
                return Ok(n);
            }
            for e in page {
                after = e.seq;
                if since.is_some_and(|s| e.at < s) {
                    continue;
                }
                let data = serde_json::from_str(&e.data).unwrap_or(Value::String(e.data.clone()));
                each(Entry {
                    seq: e.seq,
                    at: crate::clock::rfc3339(e.at),
                    incident_id: e.incident,
                    run_id: e.run,
                    step_id: e.step,
                    kind: e.kind,
                    data,
                    prev_hash: e.prev_hash,
                    hash: e.hash,
                })
                .map_err(|err| super::StoreError::Invalid(format!("cannot write the export: {err}")))?;
                n += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_every_field_unambiguously() {
        let base = entry_hash(GENESIS, 1, 5, Some("i"), Some("r"), None, "k", "{}");
        assert_ne!(base, entry_hash(GENESIS, 2, 5, Some("i"), Some("r"), None, "k", "{}"));
        assert_ne!(base, entry_hash(GENESIS, 1, 5, Some("ir"), Some(""), None, "k", "{}"));
        assert_ne!(base, entry_hash(GENESIS, 1, 5, Some("i"), Some("r"), Some(""), "k", "{}"));
        assert_eq!(base.len(), 64);
    }
}
