//! Errors at the HTTP edge: RFC 9457 problem+json with a stable `code`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tsunagu_core::Code;
use tsunagu_store::StoreError;

/// A refusal or failure, as the client will see it.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    pub detail: String,
}

impl ApiError {
    pub fn new(code: Code, detail: impl Into<String>) -> ApiError {
        ApiError {
            status: status_of(code),
            code,
            detail: detail.into(),
        }
    }

    pub fn internal(context: &str, err: impl std::fmt::Display) -> ApiError {
        tracing::error!(%context, error = %err, "internal error");
        ApiError::new(
            Code::InternalError,
            "an internal error occurred; it has been logged",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(reason) => {
                tracing::error!(%reason, "database unavailable");
                ApiError::new(Code::Unavailable, "the database is unavailable; try again")
            }
            other => ApiError::internal("store", other),
        }
    }
}

/// The HTTP status for a code.
pub fn status_of(code: Code) -> StatusCode {
    use Code::*;
    match code {
        InvalidRequest | InvalidJson | InvalidJwk | UnsupportedProofType | ProofMismatch
        | InvalidRange => StatusCode::BAD_REQUEST,
        PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        NotFound => StatusCode::NOT_FOUND,
        MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Unauthorized => StatusCode::UNAUTHORIZED,
        RateLimited => StatusCode::TOO_MANY_REQUESTS,
        InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        DeviceAlreadyEnrolled | VoteNotApplicable | ConsentSuperseded => StatusCode::CONFLICT,
        UnknownService | UnknownConsent | UnknownTicket => StatusCode::NOT_FOUND,
        ApplicationInvalid | StaleRequest | TermsMismatch | NotConsentable | ExpiryInvalid
        | RequesterRequired => StatusCode::BAD_REQUEST,
        ReceiptMismatch | ReceiptMissing => StatusCode::CONFLICT,
        UnknownMember => StatusCode::UNAUTHORIZED,
        ReproofRequired | NoConsent | ConsentExpired | ConsentRevoked | ItemsNotCovered
        | ProvisionalId | ServiceSuspended | PurposeNotApproved | UnknownSubject => {
            StatusCode::FORBIDDEN
        }
        Locked => StatusCode::LOCKED,
        Forbidden
        | NonceInvalid
        | SignatureInvalid
        | CertificateUntrusted
        | CertificateExpired
        | CertificateNotYetValid
        | CertificateRevoked
        | CertificateStatusUnknown
        | AttributesMissing
        | IdentityMismatch
        | CredentialInvalid
        | CredentialExpired
        | CredentialRevoked => StatusCode::FORBIDDEN,
    }
}

fn title_of(code: Code) -> &'static str {
    use Code::*;
    match code {
        InvalidRequest => "Invalid request",
        InvalidJson => "Invalid JSON body",
        PayloadTooLarge => "Request body too large",
        NotFound => "Not found",
        MethodNotAllowed => "Method not allowed",
        Unauthorized => "Authentication required",
        Forbidden => "Forbidden",
        RateLimited => "Too many requests",
        InternalError => "Internal error",
        Unavailable => "Service unavailable",
        NonceInvalid => "Nonce invalid",
        SignatureInvalid => "Signature invalid",
        InvalidJwk => "Invalid device key",
        UnsupportedProofType => "Unsupported proof type",
        ProofMismatch => "Proof does not match the request",
        CertificateUntrusted => "Certificate not trusted",
        CertificateExpired => "Certificate expired",
        CertificateNotYetValid => "Certificate not yet valid",
        CertificateRevoked => "Certificate revoked",
        CertificateStatusUnknown => "Certificate status unknown",
        AttributesMissing => "Basic items missing from the certificate",
        DeviceAlreadyEnrolled => "Device already enrolled",
        IdentityMismatch => "Identity does not match",
        CredentialInvalid => "Credential invalid",
        CredentialExpired => "Credential expired",
        CredentialRevoked => "Credential revoked",
        Locked => "Credential locked",
        InvalidRange => "Invalid range",
        UnknownService => "Unknown service",
        ApplicationInvalid => "Application invalid",
        VoteNotApplicable => "Vote not applicable",
        UnknownMember => "Unknown committee member",
        StaleRequest => "Stale request",
        TermsMismatch => "Terms mismatch",
        NotConsentable => "Not a consent-based purpose",
        ExpiryInvalid => "Expiry invalid",
        ConsentSuperseded => "Consent superseded",
        ReproofRequired => "Re-proofing required",
        UnknownConsent => "Unknown consent",
        NoConsent => "No consent",
        ConsentExpired => "Consent expired",
        ConsentRevoked => "Consent revoked",
        ItemsNotCovered => "Items not covered",
        ProvisionalId => "Provisional ID",
        ServiceSuspended => "Service suspended",
        PurposeNotApproved => "Purpose not approved",
        UnknownSubject => "Unknown subject",
        RequesterRequired => "Requester and reason required",
        UnknownTicket => "Unknown ticket",
        ReceiptMismatch => "Receipts do not match",
        ReceiptMissing => "Receipt missing",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "type": format!("urn:tsunagu:problem:{}", self.code.as_str()),
            "title": title_of(self.code),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code.as_str(),
        });
        let mut response = (self.status, body.to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_status_and_a_title() {
        for code in Code::ALL {
            assert!(!title_of(*code).is_empty());
            let status = status_of(*code);
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code}"
            );
        }
    }
}
