//! What goes into the transparency ledger. Every leaf is the JCS of a [`LeafRecord`]: a
//! version, a time and one [`Event`]. Leaves carry pseudonyms (the resident's ledger
//! pairwise id, device ids, key thumbprints) and codes, never personal data values.

use crate::governance::Decision;
use crate::identity::Level;
use crate::service::{ServiceKind, ServiceStatus};
use crate::{Code, UnixSeconds};
use serde::{Deserialize, Serialize};

/// The version of the leaf format.
pub const LEAF_VERSION: u32 = 1;

/// One ledger leaf before canonicalization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeafRecord {
    pub v: u32,
    /// When the event happened (Unix seconds).
    pub at: UnixSeconds,
    #[serde(flatten)]
    pub event: Event,
}

impl LeafRecord {
    pub fn new(at: UnixSeconds, event: Event) -> Self {
        LeafRecord {
            v: LEAF_VERSION,
            at,
            event,
        }
    }
}

/// An event recorded in the ledger by any capability. It serializes as a JSON object whose
/// `type` member names it (`consent.granted`, `registry.provision`, …); the leaf is the JCS of
/// that object with `v` and `at` added ([`Leaf`]). Each capability defines its own events
/// and declares their types, so that no two capabilities write the same type.
pub trait LedgerEvent: Serialize + Send + Sync {
    /// The `type` member.
    fn kind(&self) -> &'static str;
}

/// A leaf of any event: `{v, at, type, …}`.
#[derive(Debug, Serialize)]
pub struct Leaf<'a, E: ?Sized + Serialize> {
    pub v: u32,
    pub at: UnixSeconds,
    #[serde(flatten)]
    pub event: &'a E,
}

impl<'a, E: ?Sized + Serialize> Leaf<'a, E> {
    pub fn new(at: UnixSeconds, event: &'a E) -> Self {
        Leaf {
            v: LEAF_VERSION,
            at,
            event,
        }
    }
}

impl LedgerEvent for Event {
    fn kind(&self) -> &'static str {
        Event::kind(self)
    }
}

/// A leaf of an event a capability writes (a `type` that is not one of [`Event`]'s), read
/// by the members that capability events shown to residents carry (SPEC §8, §9): who acted
/// (`role`), on which items, why (`reason`), and for a data-subject request its id, type,
/// status and deadline. Other members are ignored here; the leaf itself keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityRecord {
    pub v: u32,
    pub at: UnixSeconds,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<UnixSeconds>,
}

impl CapabilityRecord {
    /// Whether it records something refused.
    pub fn is_refusal(&self) -> bool {
        self.status.as_deref() == Some("refused") || self.kind.ends_with("_refused")
    }
}

/// How an ID was proofed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProofMethod {
    /// No proofing (仮ID).
    None,
    /// The My Number card's signing certificate (JPKI 署名用電子証明書).
    Jpki,
}

/// Who revoked a device credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum Actor {
    /// The resident, from the device with this id.
    Device(String),
    /// Operator staff with this staff id.
    Staff(String),
    /// The platform itself (e.g. a CRL refresh).
    Platform,
}

/// An event recorded in the ledger. The `type` tag names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    /// A new ID was created with its first device.
    #[serde(rename = "identity.enrolled")]
    IdentityEnrolled {
        subject: String,
        device: String,
        level: Level,
        method: ProofMethod,
    },
    /// Another device was enrolled for an existing ID with the same card.
    #[serde(rename = "identity.device_added")]
    DeviceAdded {
        subject: String,
        device: String,
        method: ProofMethod,
    },
    /// A provisional ID was proofed and is now verified.
    #[serde(rename = "identity.upgraded")]
    IdentityUpgraded { subject: String, device: String },
    /// A verified ID was proofed again with a new card certificate.
    #[serde(rename = "identity.reproofed")]
    IdentityReproofed { subject: String, device: String },
    /// An enrollment was refused. `subject` is known only when the device key was enrolled.
    #[serde(rename = "identity.enrollment_refused")]
    EnrollmentRefused {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
        /// RFC 7638 thumbprint of the device key that asked.
        key: String,
        reason: Code,
    },
    /// The card certificate behind a verified ID was found revoked (現況確認).
    #[serde(rename = "identity.reproof_required")]
    ReproofRequired { subject: String, reason: Code },
    /// A device credential was revoked.
    #[serde(rename = "identity.device_revoked")]
    DeviceRevoked {
        subject: String,
        device: String,
        by: Actor,
    },
    /// A device logged in.
    #[serde(rename = "auth.login")]
    Login { subject: String, device: String },
    /// A login was refused.
    #[serde(rename = "auth.login_refused")]
    LoginRefused {
        subject: String,
        device: String,
        reason: Code,
        /// Set when this failure locked the credential.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        locked_until: Option<UnixSeconds>,
    },
    /// The resident showed their pairwise id at a service (e.g. as a QR code).
    #[serde(rename = "identity.pairwise_shown")]
    PairwiseShown { subject: String, service: String },

    /// A service applied for review.
    #[serde(rename = "service.applied")]
    ServiceApplied {
        service: String,
        kind: ServiceKind,
        /// SHA-256 (hex) of the application as accepted.
        application_sha256: String,
        lint_errors: u32,
    },
    /// A committee member voted.
    #[serde(rename = "governance.vote")]
    Vote {
        service: String,
        member: String,
        decision: Decision,
        round: u32,
        /// SHA-256 (hex) of the signed vote.
        vote_sha256: String,
    },
    /// A service's status changed by a quorum of votes.
    #[serde(rename = "service.status_changed")]
    ServiceStatusChanged {
        service: String,
        from: ServiceStatus,
        to: ServiceStatus,
        /// The obligations that come with an approval (whether the service signed their
        /// acceptance: `obligations_accepted`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        obligations: Vec<String>,
        /// The lint error findings the committee approved over (each approving vote of the
        /// quorum named them in its `override`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        overridden: Vec<String>,
        /// With an approval: whether the application carried the service's signed
        /// acceptance of the obligations (current at the approval).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        obligations_accepted: Option<bool>,
    },

    /// A resident consented.
    #[serde(rename = "consent.granted")]
    ConsentGranted {
        subject: String,
        consent: String,
        consumer: String,
        provider: String,
        purpose: String,
        items: Vec<String>,
        expires_at: UnixSeconds,
        /// SHA-256 (hex) of the signed consent (the record).
        consent_sha256: String,
        /// `webauthn` when the resident's device is behind its screen lock and the
        /// authenticator confirmed this very statement (user verified); absent otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        confirmed_by: Option<String>,
    },
    /// A resident changed a consent's expiry.
    #[serde(rename = "consent.expiry_changed")]
    ConsentExpiryChanged {
        subject: String,
        consent: String,
        expires_at: UnixSeconds,
        change_sha256: String,
        /// `webauthn` when the resident's device is behind its screen lock and the
        /// authenticator confirmed this very statement (user verified); absent otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        confirmed_by: Option<String>,
    },
    /// A resident revoked a consent.
    #[serde(rename = "consent.revoked")]
    ConsentRevoked {
        subject: String,
        consent: String,
        /// SHA-256 of the signed change; empty (absent) when the platform revoked the
        /// consent because the resident's account was erased.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        change_sha256: String,
        /// `erasure` when the platform revoked it as part of erasing the account.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// `webauthn` when the resident's device is behind its screen lock and the
        /// authenticator confirmed this very statement (user verified); absent otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        confirmed_by: Option<String>,
    },
    /// A consent reached its expiry.
    #[serde(rename = "consent.expired")]
    ConsentExpired { subject: String, consent: String },
    /// A consent or change was refused.
    #[serde(rename = "consent.refused")]
    ConsentRefused {
        subject: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        purpose: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        consumer: Option<String>,
        reason: Code,
    },

    /// A ticket was issued.
    #[serde(rename = "ticket.issued")]
    TicketIssued {
        subject: String,
        ticket: String,
        consumer: String,
        provider: String,
        purpose: String,
        items: Vec<String>,
        /// `consent:<id>` or `rule:<purpose_id>`.
        basis: String,
        /// For a rule: SHA-256 (hex) of the JCS of `{requester, reason}`, which are kept with
        /// the ticket (they name a person) and shown to the resident.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_sha256: Option<String>,
    },
    /// A ticket was refused.
    #[serde(rename = "ticket.refused")]
    TicketRefused {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
        consumer: String,
        purpose: String,
        items: Vec<String>,
        reason: Code,
    },
    /// A party sent its receipt for an exchange.
    #[serde(rename = "exchange.receipt")]
    ExchangeReceipt {
        ticket: String,
        service: String,
        payload_sha256: String,
    },
    /// Both receipts arrived and match.
    #[serde(rename = "exchange.completed")]
    ExchangeCompleted {
        ticket: String,
        payload_sha256: String,
    },
    /// The receipts differ, or one did not arrive in time.
    #[serde(rename = "exchange.flagged")]
    ExchangeFlagged { ticket: String, reason: Code },

    /// A service changed its keys, redirect URIs or client secret.
    #[serde(rename = "service.registration_changed")]
    ServiceRegistrationChanged {
        service: String,
        /// What changed: `jwks`, `redirect_uris`, `client_secret`.
        fields: Vec<String>,
        /// SHA-256 (hex) of the JWKS now registered.
        jwks_sha256: String,
    },
    /// The resident logged in to a service ("log in with tsunagu"): an authorization code
    /// was issued, releasing these identity items to it.
    #[serde(rename = "oidc.authorized")]
    OidcAuthorized {
        subject: String,
        client: String,
        /// The grant (code, tokens) this started.
        grant: String,
        scope: String,
        items: Vec<String>,
        /// `consent:<id>` when identity items were released.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        basis: Option<String>,
    },
    /// A login to a service was refused (the resident denied consent, or could not be asked).
    #[serde(rename = "oidc.refused")]
    OidcRefused {
        subject: String,
        client: String,
        /// The OAuth error sent to the service (`access_denied`, `consent_required`, …).
        error: String,
    },
    /// A grant's tokens were revoked (refresh token reuse, a replayed code, the resident).
    #[serde(rename = "oidc.grant_revoked")]
    OidcGrantRevoked {
        subject: String,
        client: String,
        grant: String,
        reason: String,
    },

    /// A rotation of a platform key started (ADR 0019). `what` is `signing` (the ES256 key
    /// of credentials, tickets and ID tokens) or `sealing` (the keyring); the tree-head key's
    /// rotation is [`Event::LedgerKeyRotated`].
    #[serde(rename = "keys.rotation_started")]
    KeyRotationStarted {
        what: String,
        /// The new key: a signing key's `kid`, a keyring key's id.
        key: String,
        /// The keys it replaces.
        previous: Vec<String>,
        /// When the new key starts signing (a keyring key seals at once).
        activate_at: UnixSeconds,
        /// When the previous signing keys leave the JWKS: after everything they signed has
        /// expired.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retire_previous_at: Option<UnixSeconds>,
    },
    /// A key left service: a signing key left the JWKS and was deleted, or a keyring key was
    /// removed after every row it sealed was sealed again under the active key.
    #[serde(rename = "keys.retired")]
    KeyRetired {
        what: String,
        key: String,
        /// Rows sealed again before a keyring key was removed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resealed: Option<u64>,
    },
    /// The tree-head key changes. This leaf is included in a tree head signed by the previous
    /// key (the handover head); heads after `activate_at` are signed by the new one, which an
    /// auditor's monitor then trusts.
    #[serde(rename = "ledger.key_rotated")]
    LedgerKeyRotated {
        /// The new key's RFC 7638 thumbprint.
        kid: String,
        /// The new key's public JWK.
        jwk: serde_json::Value,
        previous_kid: String,
        activate_at: UnixSeconds,
    },
}

impl Event {
    /// Every `type` tag of these events (the platform's ledger event types).
    pub const KINDS: &'static [&'static str] = &[
        "identity.enrolled",
        "identity.device_added",
        "identity.upgraded",
        "identity.reproofed",
        "identity.enrollment_refused",
        "identity.reproof_required",
        "identity.device_revoked",
        "auth.login",
        "auth.login_refused",
        "identity.pairwise_shown",
        "service.applied",
        "governance.vote",
        "service.status_changed",
        "consent.granted",
        "consent.expiry_changed",
        "consent.revoked",
        "consent.expired",
        "consent.refused",
        "ticket.issued",
        "ticket.refused",
        "exchange.receipt",
        "exchange.completed",
        "exchange.flagged",
        "service.registration_changed",
        "oidc.authorized",
        "oidc.refused",
        "oidc.grant_revoked",
        "keys.rotation_started",
        "keys.retired",
        "ledger.key_rotated",
    ];

    /// The `type` tag of the event.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::IdentityEnrolled { .. } => "identity.enrolled",
            Event::DeviceAdded { .. } => "identity.device_added",
            Event::IdentityUpgraded { .. } => "identity.upgraded",
            Event::IdentityReproofed { .. } => "identity.reproofed",
            Event::EnrollmentRefused { .. } => "identity.enrollment_refused",
            Event::ReproofRequired { .. } => "identity.reproof_required",
            Event::DeviceRevoked { .. } => "identity.device_revoked",
            Event::Login { .. } => "auth.login",
            Event::LoginRefused { .. } => "auth.login_refused",
            Event::PairwiseShown { .. } => "identity.pairwise_shown",
            Event::ServiceApplied { .. } => "service.applied",
            Event::Vote { .. } => "governance.vote",
            Event::ServiceStatusChanged { .. } => "service.status_changed",
            Event::ConsentGranted { .. } => "consent.granted",
            Event::ConsentExpiryChanged { .. } => "consent.expiry_changed",
            Event::ConsentRevoked { .. } => "consent.revoked",
            Event::ConsentExpired { .. } => "consent.expired",
            Event::ConsentRefused { .. } => "consent.refused",
            Event::TicketIssued { .. } => "ticket.issued",
            Event::TicketRefused { .. } => "ticket.refused",
            Event::ExchangeReceipt { .. } => "exchange.receipt",
            Event::ExchangeCompleted { .. } => "exchange.completed",
            Event::ExchangeFlagged { .. } => "exchange.flagged",
            Event::ServiceRegistrationChanged { .. } => "service.registration_changed",
            Event::OidcAuthorized { .. } => "oidc.authorized",
            Event::OidcRefused { .. } => "oidc.refused",
            Event::OidcGrantRevoked { .. } => "oidc.grant_revoked",
            Event::KeyRotationStarted { .. } => "keys.rotation_started",
            Event::KeyRetired { .. } => "keys.retired",
            Event::LedgerKeyRotated { .. } => "ledger.key_rotated",
        }
    }

    /// Why it happened, for events that say (a refusal's code, a revocation's reason).
    pub fn reason(&self) -> Option<String> {
        match self {
            Event::EnrollmentRefused { reason, .. }
            | Event::ReproofRequired { reason, .. }
            | Event::LoginRefused { reason, .. }
            | Event::ConsentRefused { reason, .. }
            | Event::TicketRefused { reason, .. }
            | Event::ExchangeFlagged { reason, .. } => Some(reason.as_str().to_owned()),
            Event::OidcGrantRevoked { reason, .. } => Some(reason.clone()),
            Event::ConsentRevoked { reason, .. } => reason.clone(),
            _ => None,
        }
    }

    /// Whether the event records something refused (for the history's outcome column).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Event::EnrollmentRefused { .. }
                | Event::LoginRefused { .. }
                | Event::ConsentRefused { .. }
                | Event::TicketRefused { .. }
                | Event::OidcRefused { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_serializes_flat_with_its_type_tag() {
        let leaf = LeafRecord::new(
            1_700_000_000,
            Event::LoginRefused {
                subject: "p".into(),
                device: "d".into(),
                reason: Code::SignatureInvalid,
                locked_until: None,
            },
        );
        let v = serde_json::to_value(&leaf).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"v":1,"at":1_700_000_000,"type":"auth.login_refused",
                "subject":"p","device":"d","reason":"signature_invalid"})
        );
        let back: LeafRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, leaf);
        assert_eq!(back.event.kind(), "auth.login_refused");
    }

    #[test]
    fn a_leaf_of_any_event_is_the_same_as_a_leaf_record() {
        let event = Event::Login {
            subject: "p".into(),
            device: "d".into(),
        };
        assert_eq!(
            serde_json::to_value(Leaf::new(5, &event)).unwrap(),
            serde_json::to_value(LeafRecord::new(5, event.clone())).unwrap()
        );
        assert!(Event::KINDS.contains(&LedgerEvent::kind(&event)));
        let unique: std::collections::HashSet<_> = Event::KINDS.iter().collect();
        assert_eq!(unique.len(), Event::KINDS.len());
    }
}
