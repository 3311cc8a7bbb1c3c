use std::time::Duration;

/// An action failed. The variant is the decision the engine needs: try again later, or stop.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ActionError {
    /// Worth trying again with the same idempotency key (429, 5xx, network errors, timeouts).
    #[error("{message}")]
    Retryable {
        code: String,
        message: String,
        /// At least this long before the next try, when the vendor said so (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// Repeating it cannot help (bad input, 4xx other than 429, a refused operation).
    #[error("{message}")]
    Permanent { code: String, message: String },
}

impl ActionError {
    pub fn retryable(code: &str, message: impl Into<String>) -> Self {
        ActionError::Retryable { code: code.to_string(), message: message.into(), retry_after: None }
    }

    pub fn retry_after(code: &str, message: impl Into<String>, after: Option<Duration>) -> Self {
        ActionError::Retryable { code: code.to_string(), message: message.into(), retry_after: after }
    }

    pub fn permanent(code: &str, message: impl Into<String>) -> Self {
        ActionError::Permanent { code: code.to_string(), message: message.into() }
    }

    /// The input failed the action's own checks.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::permanent("invalid_input", message)
    }

    /// The connector has no configuration (e.g. `simulate` without `--config`).
    pub fn not_configured(connector: &str) -> Self {
        Self::permanent(
            "not_configured",
            format!("connector {connector:?} is not configured: add a [connectors.{connector}] table to the config"),
        )
    }

    /// Classifies a vendor HTTP answer: 429 and 5xx are retryable, every other status is not.
    pub fn from_status(status: u16, message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        let message = message.into();
        let code = format!("http_{status}");
        if status == 429 || status >= 500 {
            ActionError::Retryable { code, message, retry_after }
        } else {
            ActionError::Permanent { code, message }
        }
    }

    /// A stable, machine-readable code (`http_429`, `invalid_input`, `quota_exceeded`, ...).
    pub fn code(&self) -> &str {
        match self {
            ActionError::Retryable { code, .. } | ActionError::Permanent { code, .. } => code,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            ActionError::Retryable { message, .. } | ActionError::Permanent { message, .. } => message,
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, ActionError::Retryable { .. })
    }

    pub fn retry_after_hint(&self) -> Option<Duration> {
        match self {
            ActionError::Retryable { retry_after, .. } => *retry_after,
            ActionError::Permanent { .. } => None,
        }
    }
}

/// A connector's configuration table is wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[error("connector {connector}: {message}")]
pub struct BuildError {
    pub connector: String,
    pub message: String,
}

impl BuildError {
    pub fn new(connector: &str, message: impl Into<String>) -> Self {
        BuildError { connector: connector.to_string(), message: message.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_classification_retries_only_429_and_5xx() {
        assert!(ActionError::from_status(429, "slow down", None).is_retryable());
        assert!(ActionError::from_status(503, "unavailable", None).is_retryable());
        assert!(ActionError::from_status(500, "boom", None).is_retryable());
        for s in [400, 401, 403, 404, 409, 422] {
            assert!(!ActionError::from_status(s, "no", None).is_retryable(), "{s}");
        }
        assert_eq!(ActionError::from_status(404, "x", None).code(), "http_404");
    }
}
