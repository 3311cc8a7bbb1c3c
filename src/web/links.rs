//! Approval links: signed, per-approver, expiring, single-use URLs (for Teams cards, where
//! buttons cannot post back, and for e-mail).
//!
//! A token is `<payload>.<signature>`, both base64url: the payload names the approval, the
//! identity the link was made for, its expiry and a random nonce; the signature is
//! HMAC-SHA256 over the payload with the server's secret (`[server] secret`). Verification is
//! constant-time. Expiry is the approval's deadline. Single use is enforced by recording the
//! nonce when a decision is made through the link (see the console's store): a link forwarded or
//! replayed after use does nothing.
//!
//! Opening a link never decides anything by itself: the page shows what would happen and asks
//! for a confirmation (link scanners and previews fetch URLs).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const CONTEXT: &[u8] = b"floodgate-approval-link-v1.";

/// What a valid link says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkClaims {
    /// Approval id.
    #[serde(rename = "a")]
    pub approval_id: String,
    /// The identity the link was made for: only they can use it.
    #[serde(rename = "i")]
    pub identity: String,
    /// Unix milliseconds after which the link is dead.
    #[serde(rename = "e")]
    pub expires_ms: i64,
    /// Random; recorded on use so the link works once.
    #[serde(rename = "n")]
    pub nonce: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this approval link is malformed")]
    Malformed,
    #[error("this approval link is not valid (its signature does not match)")]
    BadSignature,
    #[error("this approval link has expired")]
    Expired,
}

fn mac(secret: &[u8], payload: &str) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    m.update(CONTEXT);
    m.update(payload.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// A token for `identity` to decide `approval_id` until `expires_ms`.
pub fn sign(secret: &[u8], approval_id: &str, identity: &str, expires_ms: i64) -> String {
    let nonce: [u8; 16] = rand::random();
    let claims = LinkClaims {
        approval_id: approval_id.into(),
        identity: identity.into(),
        expires_ms,
        nonce: hex::encode(nonce),
    };
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
    let sig = URL_SAFE_NO_PAD.encode(mac(secret, &payload));
    format!("{payload}.{sig}")
}

/// The full URL of a link page.
pub fn url(public_url: &str, token: &str) -> String {
    format!("{}/links/{token}", public_url.trim_end_matches('/'))
}

/// Checks a token's signature and expiry (not whether it was used).
pub fn verify(secret: &[u8], token: &str, now_ms: i64) -> Result<LinkClaims, LinkError> {
    let (payload, sig) = token.split_once('.').ok_or(LinkError::Malformed)?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| LinkError::Malformed)?;
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    m.update(CONTEXT);
    m.update(payload.as_bytes());
    m.verify_slice(&sig).map_err(|_| LinkError::BadSignature)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| LinkError::Malformed)?;
    let claims: LinkClaims = serde_json::from_slice(&bytes).map_err(|_| LinkError::Malformed)?;
    if now_ms > claims.expires_ms {
        return Err(LinkError::Expired);
    }
    Ok(claims)
}

/// The token the link page's form sends back: proof that a POST came from the page we
/// rendered for this link (HMAC of the nonce under its own context, so it is no link token).
pub fn confirm_token(secret: &[u8], nonce: &str) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    m.update(b"floodgate-link-confirm-v1.");
    m.update(nonce.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_verify_expire_and_resist_tampering() {
        let t = sign(b"k", "apr_1", "alice", 1_000);
        let c = verify(b"k", &t, 999).unwrap();
        assert_eq!((c.approval_id.as_str(), c.identity.as_str(), c.expires_ms), ("apr_1", "alice", 1_000));
        assert_eq!(verify(b"k", &t, 1_001), Err(LinkError::Expired));
        assert_eq!(verify(b"other", &t, 0), Err(LinkError::BadSignature));
        // Swap in a payload for someone else: the signature no longer matches.
        let forged_claims = LinkClaims { identity: "mallory".into(), ..c.clone() };
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged_claims).unwrap()),
            t.split_once('.').unwrap().1
        );
        assert_eq!(verify(b"k", &forged, 0), Err(LinkError::BadSignature));
        assert_eq!(verify(b"k", "nodot", 0), Err(LinkError::Malformed));
        assert_ne!(sign(b"k", "apr_1", "alice", 1_000), t, "every link has its own nonce");
        assert_eq!(url("https://fg.example/", &t), format!("https://fg.example/links/{t}"));
        assert_eq!(confirm_token(b"k", &c.nonce), confirm_token(b"k", &c.nonce));
        assert_ne!(confirm_token(b"k", &c.nonce), confirm_token(b"other", &c.nonce));
    }
}
