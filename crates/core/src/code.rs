//! Stable reason codes. They appear in problem+json bodies (`code`), in ledger leaves
//! (refusal reasons) and in CLI messages; clients match on them, so never rename one.

use serde::{Deserialize, Serialize};

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident => $text:literal ),* $(,)?) => {
        /// A stable snake_case reason code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            /// Every code, for documentation and tests.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The code as it appears on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $text,)* }
            }

            /// Parses a wire code.
            pub fn parse(s: &str) -> Option<Code> {
                match s { $($text => Some(Code::$variant),)* _ => None }
            }
        }
    };
}

codes! {
    // ---- generic request problems
    /// The request body or parameters are malformed.
    InvalidRequest => "invalid_request",
    /// The body is not the JSON the endpoint expects.
    InvalidJson => "invalid_json",
    /// The body is larger than the endpoint accepts.
    PayloadTooLarge => "payload_too_large",
    /// No such resource.
    NotFound => "not_found",
    /// The method is not allowed on this resource.
    MethodNotAllowed => "method_not_allowed",
    /// The body's `Content-Type` is not one the endpoint reads (JSON endpoints read
    /// `application/json`).
    UnsupportedMediaType => "unsupported_media_type",
    /// No or an invalid access token.
    Unauthorized => "unauthorized",
    /// Authenticated, but not allowed to do this.
    Forbidden => "forbidden",
    /// Too many requests from this client or for this resident.
    RateLimited => "rate_limited",
    /// Something failed inside the platform; details are in the server log.
    InternalError => "internal_error",
    /// A dependency (the database) is unavailable.
    Unavailable => "unavailable",

    // ---- enrollment and proofing
    /// The nonce is unknown, expired, already used, or not the one signed.
    NonceInvalid => "nonce_invalid",
    /// A signature does not verify.
    SignatureInvalid => "signature_invalid",
    /// The device key is not an acceptable public JWK (P-256, no private part).
    InvalidJwk => "invalid_jwk",
    /// The proof type is not supported.
    UnsupportedProofType => "unsupported_proof_type",
    /// The signed data is not the JCS of the expected object for this device key.
    ProofMismatch => "proof_mismatch",
    /// The certificate chain does not lead to a configured trust anchor, or a certificate
    /// in it is malformed or not usable for signing.
    CertificateUntrusted => "certificate_untrusted",
    /// The card certificate has expired.
    CertificateExpired => "certificate_expired",
    /// The card certificate is not valid yet.
    CertificateNotYetValid => "certificate_not_yet_valid",
    /// The card certificate is revoked.
    CertificateRevoked => "certificate_revoked",
    /// The revocation status could not be established (no current CRL for the issuer).
    CertificateStatusUnknown => "certificate_status_unknown",
    /// The certificate lacks one of the four basic items.
    AttributesMissing => "attributes_missing",
    /// This device key is already enrolled and no proof was given to upgrade it.
    DeviceAlreadyEnrolled => "device_already_enrolled",
    /// The proof belongs to a different person than the account being re-proofed.
    IdentityMismatch => "identity_mismatch",

    // ---- login and credentials
    /// The device credential is malformed or not issued by this platform.
    CredentialInvalid => "credential_invalid",
    /// The device credential has expired; the resident must re-proof.
    CredentialExpired => "credential_expired",
    /// The device credential was revoked.
    CredentialRevoked => "credential_revoked",
    /// Too many failed logins: the credential is locked for a while.
    Locked => "locked",
    /// The device is protected by WebAuthn user verification and the request carries no
    /// assertion, or the authenticator did not verify the user (PIN, fingerprint, face).
    UserVerificationRequired => "user_verification_required",
    /// A WebAuthn registration or assertion does not verify (challenge, origin, relying
    /// party, credential, signature, counter, or an unsupported shape).
    UserVerificationInvalid => "user_verification_invalid",
    /// The platform cannot use WebAuthn (its public URL is not an https domain name).
    UserVerificationUnavailable => "user_verification_unavailable",

    // ---- ledger
    /// The requested tree size or index is outside the log.
    InvalidRange => "invalid_range",

    // ---- services and governance
    /// No such service.
    UnknownService => "unknown_service",
    /// The service application is not acceptable as submitted.
    ApplicationInvalid => "application_invalid",
    /// The vote's decision does not apply to the service's current state.
    VoteNotApplicable => "vote_not_applicable",
    /// An approving vote does not name every error finding of the lint in `override`.
    FindingsNotOverridden => "findings_not_overridden",
    /// The signer is not a configured committee member.
    UnknownMember => "unknown_member",

    // ---- consent
    /// A signed request's `issued_at` is too far from now.
    StaleRequest => "stale_request",
    /// The consent does not match the purpose's current terms, consumer or provider.
    TermsMismatch => "terms_mismatch",
    /// The purpose rests on a legal basis, not on consent: it is shown, not switched.
    NotConsentable => "not_consentable",
    /// The expiry is in the past or beyond the longest allowed.
    ExpiryInvalid => "expiry_invalid",
    /// A newer consent to the same purpose replaced this one.
    ConsentSuperseded => "consent_superseded",
    /// The ID must be proofed again (its card certificate was revoked).
    ReproofRequired => "reproof_required",
    /// No such consent for this resident.
    UnknownConsent => "unknown_consent",

    // ---- exchange (ticket refusals, SPEC §16)
    /// The resident has not consented to this purpose.
    NoConsent => "no_consent",
    /// The consent has expired.
    ConsentExpired => "consent_expired",
    /// The consent was revoked.
    ConsentRevoked => "consent_revoked",
    /// The items asked for are not all covered by the purpose or the consent.
    ItemsNotCovered => "items_not_covered",
    /// The resident's ID is provisional (仮ID): no data linkage.
    ProvisionalId => "provisional_id",
    /// The consumer or the provider is suspended by the committee.
    ServiceSuspended => "service_suspended",
    /// The purpose is unknown, or it or one of its services is not approved.
    PurposeNotApproved => "purpose_not_approved",
    /// The subject is not a pairwise identifier the platform gave this service.
    UnknownSubject => "unknown_subject",
    /// A legal-basis request must say who asks and why.
    RequesterRequired => "requester_required",
    /// No such ticket for this service.
    UnknownTicket => "unknown_ticket",
    /// The two receipts of an exchange differ.
    ReceiptMismatch => "receipt_mismatch",
    /// A receipt did not arrive in time.
    ReceiptMissing => "receipt_missing",

    // ---- connectors (providers and consumers)
    /// The ticket does not verify, or is not for this provider.
    TicketInvalid => "ticket_invalid",
    /// The ticket has expired.
    TicketExpired => "ticket_expired",
    /// The proof of possession is missing or does not verify.
    ProofInvalid => "proof_invalid",
    /// This ticket or proof was already used.
    Replayed => "replayed",
    /// The provider's own system failed to answer.
    UpstreamFailed => "upstream_failed",
    /// The provider's payload does not verify.
    PayloadInvalid => "payload_invalid",

    // ---- residents' rights (SPEC §9)
    /// The resident asked the platform to stop using or providing their data (利用停止,
    /// 第三者提供の停止); only standing legal-basis rules still provide.
    SuspendedByResident => "suspended_by_resident",
    /// The resident's account was erased at their request: it cannot log in again.
    AccountErased => "account_erased",
    /// No data-subject request with this id (of this resident).
    UnknownRequest => "unknown_request",
    /// The request was already decided.
    RequestClosed => "request_closed",

    // ---- operator staff (SPEC §8)
    /// Staff id or password wrong (which one is not said).
    InvalidCredentials => "invalid_credentials",
    /// The TOTP code is wrong or outside the allowed window.
    TotpInvalid => "totp_invalid",
    /// This TOTP code (or an older one) was already used for this account.
    TotpReplayed => "totp_replayed",
    /// The client's address is not in `[admin] allowed_networks`.
    NetworkNotAllowed => "network_not_allowed",
    /// A look at a resident's data needs a stated reason.
    ReasonRequired => "reason_required",
    /// The staff member holds no active grant (none, expired or withdrawn) for this.
    NoGrant => "no_grant",
    /// No staff account or grant with this id.
    UnknownStaff => "unknown_staff",
}

impl Code {
    /// The HTTP status a refusal with this code is answered with.
    pub fn http_status(self) -> u16 {
        use Code::*;
        match self {
            InvalidRequest | InvalidJson | InvalidJwk | UnsupportedProofType | ProofMismatch
            | InvalidRange => 400,
            PayloadTooLarge => 413,
            NotFound => 404,
            MethodNotAllowed => 405,
            UnsupportedMediaType => 415,
            Unauthorized => 401,
            RateLimited => 429,
            InternalError => 500,
            Unavailable => 503,
            DeviceAlreadyEnrolled
            | VoteNotApplicable
            | ConsentSuperseded
            | FindingsNotOverridden => 409,
            UnknownService | UnknownConsent | UnknownTicket => 404,
            ApplicationInvalid | StaleRequest | TermsMismatch | NotConsentable | ExpiryInvalid
            | RequesterRequired => 400,
            ReceiptMismatch | ReceiptMissing | Replayed => 409,
            TicketInvalid | TicketExpired | ProofInvalid => 401,
            UpstreamFailed | PayloadInvalid => 502,
            SuspendedByResident | AccountErased | NetworkNotAllowed | NoGrant => 403,
            UnknownRequest | UnknownStaff => 404,
            RequestClosed => 409,
            ReasonRequired => 400,
            InvalidCredentials | TotpInvalid | TotpReplayed => 401,
            UnknownMember => 401,
            ReproofRequired | NoConsent | ConsentExpired | ConsentRevoked | ItemsNotCovered
            | ProvisionalId | ServiceSuspended | PurposeNotApproved | UnknownSubject => 403,
            Locked => 423,
            // 403 like a wrong signature: on a consent the session itself is fine, and a client
            // that reads 401 as "the token is dead" must not drop it.
            UserVerificationRequired | UserVerificationInvalid => 403,
            UserVerificationUnavailable => 400,
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
            | CredentialRevoked => 403,
        }
    }

    /// A short English title (problem+json `title`).
    pub fn title(self) -> &'static str {
        use Code::*;
        match self {
            InvalidRequest => "Invalid request",
            InvalidJson => "Invalid JSON body",
            PayloadTooLarge => "Request body too large",
            NotFound => "Not found",
            MethodNotAllowed => "Method not allowed",
            UnsupportedMediaType => "Unsupported media type",
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
            UserVerificationRequired => "User verification required",
            UserVerificationInvalid => "User verification invalid",
            UserVerificationUnavailable => "User verification unavailable",
            InvalidRange => "Invalid range",
            UnknownService => "Unknown service",
            ApplicationInvalid => "Application invalid",
            VoteNotApplicable => "Vote not applicable",
            FindingsNotOverridden => "Findings not overridden",
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
            TicketInvalid => "Ticket invalid",
            TicketExpired => "Ticket expired",
            ProofInvalid => "Proof of possession invalid",
            Replayed => "Replayed",
            UpstreamFailed => "Upstream failed",
            PayloadInvalid => "Payload invalid",
            SuspendedByResident => "Suspended by the resident",
            AccountErased => "Account erased",
            UnknownRequest => "Unknown request",
            RequestClosed => "Request already decided",
            InvalidCredentials => "Invalid credentials",
            TotpInvalid => "One-time code invalid",
            TotpReplayed => "One-time code already used",
            NetworkNotAllowed => "Network not allowed",
            ReasonRequired => "Reason required",
            NoGrant => "No active grant",
            UnknownStaff => "Unknown staff or grant",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal's detail as a client may read it: the names of the platform's own Rust types,
/// which serde quotes in its messages (`expected struct LoginRequest`), are replaced by what
/// the client should have sent (`expected an object`). Everything else is kept.
pub fn public_detail(detail: &str) -> std::borrow::Cow<'_, str> {
    const TYPES: &[(&str, &str)] = &[
        ("tuple struct ", "an array"),
        ("unit struct ", "null"),
        ("newtype struct ", "a value"),
        ("struct variant ", "an object"),
        ("tuple variant ", "an array"),
        ("struct ", "an object"),
        ("enum ", "one of the allowed values"),
    ];
    if !TYPES.iter().any(|(t, _)| detail.contains(t)) {
        return std::borrow::Cow::Borrowed(detail);
    }
    let mut out = String::with_capacity(detail.len());
    let mut rest = detail;
    'scan: while !rest.is_empty() {
        for (name, instead) in TYPES {
            // Only where serde names a type: after "expected " or "invalid type: ".
            if let Some(tail) = rest.strip_prefix(name)
                && (out.ends_with("expected ") || out.ends_with("type: "))
            {
                let ident_len = tail
                    .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | ':' | '<' | '>')))
                    .unwrap_or(tail.len());
                if ident_len > 0 {
                    out.push_str(instead);
                    rest = &tail[ident_len..];
                    continue 'scan;
                }
            }
        }
        let c = rest.chars().next().expect("not empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_wire_form() {
        for code in Code::ALL {
            assert_eq!(Code::parse(code.as_str()), Some(*code));
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn codes_are_snake_case_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
            assert!(seen.insert(s), "duplicate {s}");
        }
    }

    #[test]
    fn public_details_never_name_rust_types() {
        assert_eq!(
            public_detail(
                "invalid type: string \"x\", expected struct LoginRequest at line 1 column 3"
            ),
            "invalid type: string \"x\", expected an object at line 1 column 3"
        );
        assert_eq!(
            public_detail("invalid type: map, expected tuple struct Pair"),
            "invalid type: map, expected an array"
        );
        assert_eq!(
            public_detail("expected enum Decision"),
            "expected one of the allowed values"
        );
        assert_eq!(
            public_detail("invalid type: unit struct Marker, expected a string"),
            "invalid type: null, expected a string"
        );
        // Words that are not serde's type names stay.
        assert_eq!(
            public_detail("missing field `nonce`"),
            "missing field `nonce`"
        );
        assert_eq!(
            public_detail("the struct of a consent is wrong"),
            "the struct of a consent is wrong"
        );
        assert_eq!(public_detail("expected struct "), "expected struct ");
    }
}
