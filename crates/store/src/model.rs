//! Rows and changes.

use tsunagu_core::consent::ConsentStatus;
use tsunagu_core::identity::{AccountStatus, DeviceStatus, Level};
use tsunagu_core::service::{LegalBasis, ServiceKind, ServiceStatus};

/// An account row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub id: String,
    pub level: Level,
    pub status: AccountStatus,
    /// Sealed basic items.
    pub attributes: Option<Vec<u8>>,
    pub card: Option<CardRef>,
    /// Incremented by every update.
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The certificate that proofed an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRef {
    /// Keyed digest of the certificate (see `accounts.card_binding`).
    pub binding: String,
    pub issuer: Vec<u8>,
    pub serial: Vec<u8>,
    pub not_after: i64,
}

/// A device credential row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub id: String,
    pub account_id: String,
    pub jkt: String,
    pub jwk: String,
    pub status: DeviceStatus,
    pub failed_logins: i64,
    pub locked_until: Option<i64>,
    pub expires_at: i64,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A bearer session row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub token_hash: String,
    pub account_id: String,
    pub device_id: String,
    pub expires_at: i64,
    pub created_at: i64,
}

/// A stored ledger leaf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafRow {
    pub index: u64,
    pub hash: [u8; 32],
    /// None after retention.
    pub input: Option<Vec<u8>>,
    pub created_at: i64,
}

/// A stored signed tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SthRow {
    pub tree_size: u64,
    pub root_hash: Vec<u8>,
    pub timestamp: i64,
    pub key_id: String,
    pub signature: Vec<u8>,
}

/// A platform key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub name: String,
    pub purpose: String,
    pub kid: String,
    pub alg: String,
    pub secret: Vec<u8>,
    pub active: bool,
    pub created_at: i64,
}

/// A service row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow {
    pub id: String,
    pub name: String,
    pub organization: String,
    pub contact: String,
    pub kind: ServiceKind,
    pub status: ServiceStatus,
    /// The application as accepted (JSON).
    pub application: String,
    /// The service's JWKS (JSON).
    pub jwks: String,
    pub endpoint: Option<String>,
    /// Lint findings (JSON array).
    pub lint: String,
    pub round: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// SHA-256 (hex) of the client secret, for a service that authenticates to the OpenID
    /// Connect token endpoint with `client_secret_basic`; `None` otherwise.
    pub client_secret_hash: Option<String>,
}

/// A purpose of a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurposeRow {
    pub consumer_id: String,
    pub purpose_id: String,
    pub provider_id: String,
    pub legal_basis: LegalBasis,
    pub items: Vec<String>,
    /// The purpose as applied for (JSON).
    pub definition: String,
    pub terms_sha256: String,
}

/// A committee vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteRow {
    pub member_id: String,
    pub nonce: String,
    pub service_id: String,
    pub round: i64,
    pub decision: String,
    pub comment: String,
    pub issued_at: i64,
    pub jws: String,
    pub created_at: i64,
}

/// A consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRow {
    pub id: String,
    pub account_id: String,
    pub consumer_id: String,
    pub provider_id: String,
    pub purpose_id: String,
    /// 1, 2, … per resident, consumer and purpose: the newest decides.
    pub generation: i64,
    pub items: Vec<String>,
    pub expires_at: i64,
    pub terms_sha256: String,
    pub status: ConsentStatus,
    pub jws: String,
    pub device_id: String,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An entry of the consent feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentEventRow {
    /// Assigned by the database; ignored on insert.
    pub seq: i64,
    pub consent_id: String,
    pub account_id: String,
    pub consumer_id: String,
    pub provider_id: String,
    pub purpose_id: String,
    /// `granted`, `expiry_changed`, `revoked`, `expired`.
    pub status: String,
    pub items: Vec<String>,
    pub expires_at: i64,
    pub created_at: i64,
}

/// A ticket and the state of its exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketRow {
    pub id: String,
    pub consumer_id: String,
    pub provider_id: String,
    pub account_id: String,
    pub purpose_id: String,
    pub items: Vec<String>,
    pub basis: String,
    pub requester: Option<String>,
    pub reason: Option<String>,
    pub issued_at: i64,
    pub expires_at: i64,
    pub consumer_receipt: Option<String>,
    pub provider_receipt: Option<String>,
    /// `open`, `completed`, `mismatch`, `missing`.
    pub state: String,
    pub updated_at: i64,
}

/// An alert for the committee and operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    /// Assigned by the database; ignored on insert.
    pub seq: i64,
    pub kind: String,
    pub service_id: Option<String>,
    pub detail: String,
    pub created_at: i64,
}

/// What a ticket decision needs from storage, read in one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketContext {
    pub consumer_status: ServiceStatus,
    /// `None` when the provider is unknown.
    pub provider_status: Option<ServiceStatus>,
    /// `None` when the subject is not one the platform gave the consumer.
    pub resident: Option<ResidentRow>,
    /// The resident's latest consent to the consumer's purpose.
    pub consent: Option<ConsentRow>,
}

/// The resident behind a pairwise subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidentRow {
    pub account_id: String,
    pub level: Level,
    pub status: AccountStatus,
}

/// Which side of an exchange sends a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptSide {
    Consumer,
    Provider,
}

/// A pending OpenID Connect authorization request, between the authorization endpoint (or a
/// pushed authorization request) and the resident's login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzRequestRow {
    pub id: String,
    pub client_id: String,
    /// The validated request parameters (JSON).
    pub params: String,
    /// Whether the client pushed the request (RFC 9126).
    pub pushed: bool,
    /// The nonce of the login that answers this request, once it has started.
    pub login_nonce: Option<String>,
    pub expires_at: i64,
    pub created_at: i64,
}

/// What a resident allowed an OpenID Connect client at one login. Its codes and tokens
/// live and die with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub id: String,
    pub client_id: String,
    pub account_id: String,
    /// The device the resident logged in with.
    pub device_id: String,
    pub scope: String,
    /// The items released to the client.
    pub items: Vec<String>,
    /// The consent behind the released items, if any.
    pub consent_id: Option<String>,
    /// When the resident authenticated.
    pub auth_time: i64,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
}

/// An authorization code (stored as its hash only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRow {
    /// SHA-256 of the code, hex.
    pub code_hash: String,
    pub grant_id: String,
    pub redirect_uri: String,
    /// PKCE S256 challenge.
    pub code_challenge: String,
    /// The client's nonce, for the ID token.
    pub nonce: Option<String>,
    /// Thumbprint of the DPoP key the code is bound to.
    pub dpop_jkt: Option<String>,
    pub expires_at: i64,
    /// Set by the one redemption.
    pub used_at: Option<i64>,
    pub created_at: i64,
}

/// The kind of an OAuth token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "access" => Some(TokenKind::Access),
            "refresh" => Some(TokenKind::Refresh),
            _ => None,
        }
    }
}

/// An access or refresh token (stored as its hash only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OauthTokenRow {
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    pub grant_id: String,
    pub kind: TokenKind,
    pub scope: String,
    /// Thumbprint of the DPoP key the token is bound to.
    pub dpop_jkt: Option<String>,
    pub expires_at: i64,
    /// Refresh tokens: set by the one rotation.
    pub used_at: Option<i64>,
    pub created_at: i64,
}

/// A leaf to append, with the accounts whose history it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLeaf {
    pub input: Vec<u8>,
    /// RFC 9162 leaf hash of `input`, computed by the caller.
    pub hash: [u8; 32],
    pub subjects: Vec<String>,
    pub created_at: i64,
}

/// One mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    InsertAccount(AccountRow),
    /// Records a (re)proof: level, status, sealed attributes and the card, if the account is
    /// still at `expected_version`.
    UpdateAccountProof {
        id: String,
        expected_version: i64,
        level: Level,
        status: AccountStatus,
        attributes: Vec<u8>,
        card: CardRef,
        updated_at: i64,
    },
    /// Sets the status if it is still `from`.
    SetAccountStatus {
        id: String,
        from: AccountStatus,
        to: AccountStatus,
        updated_at: i64,
    },
    InsertDevice(DeviceRow),
    /// Revokes a device that is still active.
    RevokeDevice {
        id: String,
        at: i64,
    },
    /// Sets the failed-login counter and lock, if the counter is still `expected_failures`.
    SetLoginState {
        device_id: String,
        expected_failures: i64,
        failures: i64,
        locked_until: Option<i64>,
    },
    InsertSession(SessionRow),
    DeleteDeviceSessions {
        device_id: String,
    },

    InsertService(ServiceRow),
    InsertPurpose(PurposeRow),
    /// Refused (conflict) when this member already used this nonce.
    InsertVote(VoteRow),
    /// Sets the status if it is still `from` in round `round`, and starts the next round.
    SetServiceStatus {
        id: String,
        from: ServiceStatus,
        to: ServiceStatus,
        round: i64,
        updated_at: i64,
    },
    /// Refused (conflict) if the resident already has an active consent to this purpose, or
    /// one of this generation.
    InsertConsent(ConsentRow),
    /// Sets a consent's status if it is still `from`.
    SetConsentStatus {
        id: String,
        from: ConsentStatus,
        to: ConsentStatus,
        updated_at: i64,
    },
    /// Sets a consent's expiry if it is still at `expected_version`.
    SetConsentExpiry {
        id: String,
        expected_version: i64,
        expires_at: i64,
        updated_at: i64,
    },
    InsertConsentChange {
        consent_id: String,
        action: String,
        expires_at: Option<i64>,
        jws: String,
        created_at: i64,
    },
    InsertConsentEvent(ConsentEventRow),
    /// Refused (conflict) when the resident already used this nonce.
    UseResidentNonce {
        account_id: String,
        nonce: String,
        expires_at: i64,
    },
    /// Records that `subject` in `sector` is this account (kept if already recorded).
    LinkSubject {
        sector: String,
        subject: String,
        account_id: String,
        created_at: i64,
    },
    /// Uses a client assertion's `jti` once (refused as a conflict on replay).
    UseJti {
        key: String,
        expires_at: i64,
    },
    InsertTicket(TicketRow),
    /// Records one side's receipt, if that side has not sent one yet.
    SetReceipt {
        ticket_id: String,
        side: ReceiptSide,
        payload_sha256: String,
        updated_at: i64,
    },
    /// Moves an exchange from `open` to a final state.
    CloseTicket {
        ticket_id: String,
        state: String,
        updated_at: i64,
    },
    InsertAlert(AlertRow),

    /// Records a pending authorization request.
    InsertAuthzRequest(AuthzRequestRow),
    /// Sets the login nonce of an authorization request (refused if the request is gone or
    /// the nonce is taken).
    SetAuthzLoginNonce {
        id: String,
        login_nonce: String,
    },
    /// Deletes an authorization request; nothing happens if it is already gone.
    DeleteAuthzRequest {
        id: String,
    },
    InsertGrant(GrantRow),
    /// Revokes a grant. Revoking a revoked grant succeeds and keeps the first time and
    /// reason; refused only if there is no such grant.
    RevokeGrant {
        id: String,
        reason: String,
        at: i64,
    },
    InsertCode(CodeRow),
    /// Redeems a code if it has not been redeemed (refused when used or missing).
    UseCode {
        code_hash: String,
        at: i64,
    },
    InsertOauthToken(OauthTokenRow),
    /// Uses a refresh token if it has not been used (refused when used, missing or an access
    /// token).
    UseRefreshToken {
        token_hash: String,
        at: i64,
    },
    /// Sets or clears a service's client secret hash (refused if there is no such service).
    SetClientSecret {
        service_id: String,
        secret_hash: Option<String>,
        updated_at: i64,
    },
    /// Replaces a service's application, JWKS and endpoint (refused if there is no such
    /// service).
    UpdateServiceRegistration {
        id: String,
        application: String,
        jwks: String,
        endpoint: Option<String>,
        updated_at: i64,
    },
    /// Deletes one session (a logout); nothing happens if it is already gone.
    DeleteSession {
        token_hash: String,
    },
}

/// Changes and leaves applied atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commit {
    pub changes: Vec<Change>,
    pub leaves: Vec<NewLeaf>,
}

/// Where a commit's leaves landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Index of the commit's first leaf (equal to the next index when it has none).
    pub first_leaf: u64,
    pub leaf_count: u64,
}

/// The result of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// The ledger size before the batch (leaves below it may come from other replicas).
    pub size_before: u64,
    /// The ledger size after the batch.
    pub size_after: u64,
    pub results: Vec<Result<Committed, crate::StoreError>>,
}
