//! The typed refusal every service returns: a stable code (the same in problem+json bodies,
//! ledger leaves and CLI messages) and a sentence for people.

use tsunagu_core::Code;
use tsunagu_store::StoreError;

/// Why a service call did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail} ({code})")]
pub struct Refusal {
    pub code: Code,
    pub detail: String,
}

impl Refusal {
    pub fn new(code: Code, detail: impl Into<String>) -> Refusal {
        Refusal {
            code,
            detail: detail.into(),
        }
    }

    /// A failure of the platform itself: logged with its cause, shown without it.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Refusal {
        tracing::error!(%context, error = %err, "internal error");
        Refusal::new(
            Code::InternalError,
            "an internal error occurred; it has been logged",
        )
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(reason) => {
                tracing::error!(%reason, "database unavailable");
                Refusal::new(Code::Unavailable, "the database is unavailable; try again")
            }
            other => Refusal::internal("store", other),
        }
    }
}

/// The result of a service call.
pub type Outcome<T> = Result<T, Refusal>;
