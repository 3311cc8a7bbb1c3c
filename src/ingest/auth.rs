//! Who may send alerts: each source authenticates with an HMAC signature (with a timestamp
//! window against replay), a bearer token, or Basic credentials (Databricks notification
//! destinations can only send Basic). Every comparison is constant-time.

use crate::config::ResolvedAuth;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far a signature's timestamp may be from now.
pub const SIGNATURE_WINDOW_SECS: i64 = 300;
pub const SIGNATURE_HEADER: &str = "x-floodgate-signature";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("malformed {0} header")]
    Malformed(&'static str),
    #[error("signature timestamp is outside the 5-minute window")]
    Stale,
    #[error("invalid signature")]
    BadSignature,
    #[error("invalid credentials")]
    BadCredentials,
}

/// The signature header value for `body` at unix time `t` (what a sender computes).
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex::encode(mac(secret, t, body)))
}

fn mac(secret: &[u8], t: i64, body: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Checks a request's credentials. `header` looks a header up by lower-case name.
pub fn verify(
    auth: &ResolvedAuth,
    header: impl Fn(&str) -> Option<String>,
    body: &[u8],
    now_secs: i64,
) -> Result<(), AuthError> {
    match auth {
        ResolvedAuth::Hmac(secret) => {
            let value = header(SIGNATURE_HEADER).ok_or(AuthError::Missing("X-Floodgate-Signature"))?;
            let mut t: Option<i64> = None;
            let mut sigs: Vec<Vec<u8>> = Vec::new();
            for part in value.split(',') {
                match part.trim().split_once('=') {
                    Some(("t", v)) => t = Some(v.parse().map_err(|_| AuthError::Malformed("X-Floodgate-Signature"))?),
                    Some(("v1", v)) => {
                        sigs.push(hex::decode(v).map_err(|_| AuthError::Malformed("X-Floodgate-Signature"))?)
                    }
                    _ => {}
                }
            }
            let t = t.ok_or(AuthError::Malformed("X-Floodgate-Signature"))?;
            if sigs.is_empty() {
                return Err(AuthError::Malformed("X-Floodgate-Signature"));
            }
            if (now_secs - t).abs() > SIGNATURE_WINDOW_SECS {
                return Err(AuthError::Stale);
            }
            let expected = mac(secret.expose().as_bytes(), t, body);
            // Several v1 values let a sender sign with an old and a new secret during rotation.
            if sigs.iter().any(|s| ct_eq(s, &expected)) { Ok(()) } else { Err(AuthError::BadSignature) }
        }
        ResolvedAuth::Bearer(token) => {
            let value = header("authorization").ok_or(AuthError::Missing("Authorization"))?;
            let given = value.strip_prefix("Bearer ").ok_or(AuthError::Malformed("Authorization"))?;
            if ct_eq(given.trim().as_bytes(), token.expose().as_bytes()) {
                Ok(())
            } else {
                Err(AuthError::BadCredentials)
            }
        }
        ResolvedAuth::Basic { username, password } => {
            let value = header("authorization").ok_or(AuthError::Missing("Authorization"))?;
            let b64 = value.strip_prefix("Basic ").ok_or(AuthError::Malformed("Authorization"))?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| AuthError::Malformed("Authorization"))?;
            let Some(colon) = decoded.iter().position(|b| *b == b':') else {
                return Err(AuthError::Malformed("Authorization"));
            };
            let user_ok = ct_eq(&decoded[..colon], username.as_bytes());
            let pass_ok = ct_eq(&decoded[colon + 1..], password.expose().as_bytes());
            if user_ok & pass_ok { Ok(()) } else { Err(AuthError::BadCredentials) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use floodgate_sdk::Secret;

    fn hdr<'a>(name: &'a str, value: &'a str) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| (n == name).then(|| value.to_string())
    }

    #[test]
    fn hmac_signatures_within_the_window_verify() {
        let auth = ResolvedAuth::Hmac(Secret::new("s3cret"));
        let body = br#"{"id":"1"}"#;
        let sig = sign(b"s3cret", 1_000, body);
        assert_eq!(verify(&auth, hdr(SIGNATURE_HEADER, &sig), body, 1_100), Ok(()));
        assert_eq!(verify(&auth, hdr(SIGNATURE_HEADER, &sig), body, 1_301), Err(AuthError::Stale));
        assert_eq!(verify(&auth, hdr(SIGNATURE_HEADER, &sig), b"{\"id\":\"2\"}", 1_100), Err(AuthError::BadSignature));
        let wrong = sign(b"other", 1_000, body);
        assert_eq!(verify(&auth, hdr(SIGNATURE_HEADER, &wrong), body, 1_000), Err(AuthError::BadSignature));
        let rotated = format!("{wrong},v1={}", sig.split("v1=").nth(1).unwrap());
        assert_eq!(verify(&auth, hdr(SIGNATURE_HEADER, &rotated), body, 1_000), Ok(()));
        assert_eq!(verify(&auth, |_| None, body, 1_000), Err(AuthError::Missing("X-Floodgate-Signature")));
        assert_eq!(
            verify(&auth, hdr(SIGNATURE_HEADER, "t=x,v1=zz"), body, 1_000),
            Err(AuthError::Malformed("X-Floodgate-Signature"))
        );
    }

    #[test]
    fn bearer_and_basic() {
        let bearer = ResolvedAuth::Bearer(Secret::new("tok"));
        assert_eq!(verify(&bearer, hdr("authorization", "Bearer tok"), b"", 0), Ok(()));
        assert_eq!(verify(&bearer, hdr("authorization", "Bearer nope"), b"", 0), Err(AuthError::BadCredentials));
        let basic = ResolvedAuth::Basic { username: "fg".into(), password: Secret::new("pw") };
        let good = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("fg:pw"));
        let bad = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("fg:px"));
        assert_eq!(verify(&basic, hdr("authorization", &good), b"", 0), Ok(()));
        assert_eq!(verify(&basic, hdr("authorization", &bad), b"", 0), Err(AuthError::BadCredentials));
        assert_eq!(
            verify(&basic, hdr("authorization", "Basic !!!"), b"", 0),
            Err(AuthError::Malformed("Authorization"))
        );
    }
}
