//! Alerts for the committee and operators: what happened that people should look at.

use serde::{Deserialize, Serialize};

/// Why an alert was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A ticket was issued under a standing legal-basis rule (no consent): who asked and
    /// why are kept with the ticket.
    LegalBasisUse,
    /// The consumer's and the provider's receipts name different payloads.
    ReceiptMismatch,
    /// A receipt did not arrive in time.
    ReceiptMissing,
    /// The committee suspended a service.
    ServiceSuspended,
}

impl AlertKind {
    pub const ALL: &'static [AlertKind] = &[
        AlertKind::LegalBasisUse,
        AlertKind::ReceiptMismatch,
        AlertKind::ReceiptMissing,
        AlertKind::ServiceSuspended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::LegalBasisUse => "legal_basis_use",
            AlertKind::ReceiptMismatch => "receipt_mismatch",
            AlertKind::ReceiptMissing => "receipt_missing",
            AlertKind::ServiceSuspended => "service_suspended",
        }
    }

    pub fn parse(s: &str) -> Option<AlertKind> {
        AlertKind::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for k in AlertKind::ALL {
            assert_eq!(AlertKind::parse(k.as_str()), Some(*k));
        }
        assert_eq!(AlertKind::parse("other"), None);
    }
}
