use tsunagu_core::Code;

/// Errors of the connector. Refusals carry the stable code of whoever refused.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The platform or the provider refused, with its problem+json.
    #[error("{code} (HTTP {status}): {detail}")]
    Refused {
        status: u16,
        code: String,
        detail: String,
    },
    /// A ticket, proof or payload did not verify.
    #[error("{code}: {detail}")]
    Invalid { code: Code, detail: String },
    #[error("cannot reach {0}")]
    Transport(String),
    #[error("upstream: {0}")]
    Upstream(String),
    #[error("{0}")]
    Config(String),
}

impl ConnectorError {
    pub fn invalid(code: Code, detail: impl Into<String>) -> ConnectorError {
        ConnectorError::Invalid {
            code,
            detail: detail.into(),
        }
    }

    /// The refusal code, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            ConnectorError::Refused { code, .. } => Some(code),
            ConnectorError::Invalid { code, .. } => Some(code.as_str()),
            _ => None,
        }
    }
}
