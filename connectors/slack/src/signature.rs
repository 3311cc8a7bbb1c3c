//! Slack request signing, version `v0`.
//!
//! Slack signs every request it sends to an app (interactions, events) with
//! `X-Slack-Signature: v0=hex(HMAC-SHA256(signing_secret, "v0:" + X-Slack-Request-Timestamp + ":" + raw_body))`.
//! The check must run over the raw bytes exactly as received, before any form decoding; the
//! timestamp must be within five minutes of now (either way), so a captured request cannot be
//! replayed later; and the comparison must take the same time whatever the bytes, so the
//! signature cannot be guessed byte by byte.
//!
//! `now` is a parameter so callers pass their clock and tests need no sleeping. This module
//! never logs the secret, the body or the expected signature.

use floodgate_sdk::Secret;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

type HmacSha256 = Hmac<Sha256>;

/// The longest clock difference accepted between Slack's timestamp and ours, in seconds.
pub const MAX_SKEW_SECONDS: i64 = 5 * 60;

/// Why a request's signature was refused. Each says which header to look at; none reveals the
/// expected value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("missing X-Slack-Request-Timestamp header")]
    MissingTimestamp,
    #[error("X-Slack-Request-Timestamp is not a whole number of seconds")]
    MalformedTimestamp,
    #[error("request timestamp is {age_seconds} s old (more than 5 minutes): stale or replayed")]
    Stale { age_seconds: i64 },
    #[error("request timestamp is {ahead_seconds} s in the future (more than 5 minutes): check the server clock")]
    FromTheFuture { ahead_seconds: i64 },
    #[error("missing X-Slack-Signature header")]
    MissingSignature,
    #[error("X-Slack-Signature is not of the form v0=<64 hex digits>")]
    MalformedSignature,
    #[error("X-Slack-Signature does not match the body: wrong signing secret or altered request")]
    Mismatch,
}

impl SignatureError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::MissingTimestamp => "missing_timestamp",
            SignatureError::MalformedTimestamp => "malformed_timestamp",
            SignatureError::Stale { .. } => "stale_timestamp",
            SignatureError::FromTheFuture { .. } => "future_timestamp",
            SignatureError::MissingSignature => "missing_signature",
            SignatureError::MalformedSignature => "malformed_signature",
            SignatureError::Mismatch => "signature_mismatch",
        }
    }
}

fn mac(signing_secret: &Secret, timestamp: &str, raw_body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(signing_secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(raw_body);
    mac
}

/// Verifies a request Slack sent: `timestamp_header` and `signature_header` are the values of
/// `X-Slack-Request-Timestamp` and `X-Slack-Signature` (`None` when absent), `raw_body` the
/// body bytes as received.
pub fn verify_signature(
    signing_secret: &Secret,
    timestamp_header: Option<&str>,
    signature_header: Option<&str>,
    raw_body: &[u8],
    now: OffsetDateTime,
) -> Result<(), SignatureError> {
    let ts_text = timestamp_header.map(str::trim).ok_or(SignatureError::MissingTimestamp)?;
    if ts_text.is_empty() || ts_text.len() > 12 || !ts_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::MalformedTimestamp);
    }
    let ts: i64 = ts_text.parse().map_err(|_| SignatureError::MalformedTimestamp)?;
    let delta = now.unix_timestamp() - ts;
    if delta > MAX_SKEW_SECONDS {
        return Err(SignatureError::Stale { age_seconds: delta });
    }
    if -delta > MAX_SKEW_SECONDS {
        return Err(SignatureError::FromTheFuture { ahead_seconds: -delta });
    }
    let sig = signature_header.map(str::trim).ok_or(SignatureError::MissingSignature)?;
    let hex_part = sig.strip_prefix("v0=").ok_or(SignatureError::MalformedSignature)?;
    if hex_part.len() != 64 {
        return Err(SignatureError::MalformedSignature);
    }
    let given = hex::decode(hex_part).map_err(|_| SignatureError::MalformedSignature)?;
    let expected = mac(signing_secret, ts_text, raw_body).finalize().into_bytes();
    if bool::from(expected.as_slice().ct_eq(given.as_slice())) { Ok(()) } else { Err(SignatureError::Mismatch) }
}

/// The `X-Slack-Signature` value Slack would send (for the simulator and tests).
pub fn sign(signing_secret: &Secret, timestamp: i64, raw_body: &[u8]) -> String {
    let mac = mac(signing_secret, &timestamp.to_string(), raw_body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}
