use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::path::PathBuf;

/// A secret value. It never prints: `Debug` and `Display` show `[redacted]`, and serializing it
/// writes `[redacted]` too, so a secret that slips into a log line or a JSON body by mistake
/// does not leak.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The value itself. Call it only where the value goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

/// Where a secret lives, as written in configuration: `env:NAME` or `file:PATH`.
/// A literal value is refused, so secrets never sit in config files or examples.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("secret reference {0:?} must be env:NAME or file:PATH (literal secrets are not accepted)")]
    NotAReference(String),
    #[error("environment variable {0} (named by a secret reference) is not set")]
    MissingEnv(String),
    #[error("environment variable {0} (named by a secret reference) is empty")]
    EmptyEnv(String),
    #[error("cannot read secret file {path}: {reason}")]
    File { path: String, reason: String },
}

impl SecretRef {
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        if let Some(name) = s.strip_prefix("env:")
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Ok(SecretRef::Env(name.to_string()));
        }
        if let Some(path) = s.strip_prefix("file:")
            && !path.is_empty()
        {
            return Ok(SecretRef::File(PathBuf::from(path)));
        }
        // Never echo the value back: it may be a pasted secret.
        let shown =
            if s.starts_with("env:") || s.starts_with("file:") { s.to_string() } else { "<literal value>".to_string() };
        Err(SecretError::NotAReference(shown))
    }

    /// Reads the secret now. File contents lose one trailing newline.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) if v.is_empty() => Err(SecretError::EmptyEnv(name.clone())),
                Ok(v) => Ok(Secret(v)),
                Err(_) => Err(SecretError::MissingEnv(name.clone())),
            },
            SecretRef::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| SecretError::File { path: path.display().to_string(), reason: e.to_string() })?;
                let text = text.strip_suffix('\n').unwrap_or(&text);
                let text = text.strip_suffix('\r').unwrap_or(text);
                Ok(Secret(text.to_string()))
            }
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SecretRef::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
    }

    #[test]
    fn literal_values_are_refused_without_echoing_them() {
        let e = SecretRef::parse("hunter2").unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(SecretRef::parse("env:").is_err());
        assert!(SecretRef::parse("env:A-B").is_err());
        assert_eq!(SecretRef::parse("env:FG_X").unwrap(), SecretRef::Env("FG_X".into()));
    }

    #[test]
    fn file_references_strip_one_newline() {
        let dir = std::env::temp_dir().join(format!("fg-secret-{}", std::process::id()));
        std::fs::write(&dir, "s3cret\n").unwrap();
        let r = SecretRef::File(dir.clone());
        assert_eq!(r.resolve().unwrap().expose(), "s3cret");
        std::fs::remove_file(dir).unwrap();
        assert!(matches!(
            SecretRef::Env("FLOODGATE_SURELY_UNSET_VAR".into()).resolve(),
            Err(SecretError::MissingEnv(_))
        ));
    }
}
