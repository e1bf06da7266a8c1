use tsunagu_core::Code;

/// Errors of this crate. Each maps to a stable [`Code`].
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    #[error("malformed input: {0}")]
    Malformed(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("signature does not verify")]
    BadSignature,
    #[error("decryption failed")]
    Decrypt,
    #[error("key generation or signing failed")]
    Internal,
}

impl CryptoError {
    pub fn code(&self) -> Code {
        match self {
            CryptoError::Malformed(_) | CryptoError::Unsupported(_) => Code::InvalidRequest,
            CryptoError::InvalidKey(_) => Code::InvalidJwk,
            CryptoError::BadSignature => Code::SignatureInvalid,
            CryptoError::Decrypt | CryptoError::Internal => Code::InternalError,
        }
    }
}
