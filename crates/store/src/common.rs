//! What both backends share: column lists, row buffers for bulk inserts, conversions.

use crate::*;

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

pub(crate) fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Database(format!("{v} does not fit a BIGINT")))
}

pub(crate) fn to_u64(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| corrupt("negative index"))
}

pub(crate) fn hash32(v: Vec<u8>) -> Result<[u8; 32]> {
    v.try_into()
        .map_err(|_| corrupt("leaf hash is not 32 bytes"))
}

/// Leaves to insert, column by column.
#[derive(Default)]
pub(crate) struct LeafColumns {
    pub idx: Vec<i64>,
    pub hash: Vec<Vec<u8>>,
    pub input: Vec<Vec<u8>>,
    pub created_at: Vec<i64>,
}

/// History index rows to insert.
#[derive(Default)]
pub(crate) struct SubjectColumns {
    pub account_id: Vec<String>,
    pub idx: Vec<i64>,
}

impl LeafColumns {
    /// The leaves (and their subjects) of `commits`, numbered from `first`.
    pub(crate) fn of<'c>(
        commits: impl Iterator<Item = &'c Commit>,
        first: u64,
    ) -> Result<(LeafColumns, SubjectColumns)> {
        let mut leaves = LeafColumns::default();
        let mut subjects = SubjectColumns::default();
        let mut idx = to_i64(first)?;
        for commit in commits {
            for leaf in &commit.leaves {
                leaves.idx.push(idx);
                leaves.hash.push(leaf.hash.to_vec());
                leaves.input.push(leaf.input.clone());
                leaves.created_at.push(leaf.created_at);
                for subject in &leaf.subjects {
                    subjects.account_id.push(subject.clone());
                    subjects.idx.push(idx);
                }
                idx += 1;
            }
        }
        Ok((leaves, subjects))
    }
}

/// Whether the optimistic batch path writes `change` in bulk (one statement per table for the
/// whole batch, after the batch's other changes and before its leaves).
///
/// Only insert-only kinds qualify whose rows no other change of the same batch can read or
/// depend on: a client assertion's `jti` (read by nothing but its own unique key), a new ticket
/// (its id is only revealed once the batch is durable, so no receipt for it can share the
/// batch) and a pairwise subject link (`ON CONFLICT DO NOTHING`, order-free). A `jti` replayed
/// within or across batches still violates the unique key, and the batch falls back to
/// per-commit savepoints where each commit's changes are applied one by one, in order.
pub(crate) fn is_bulk(change: &Change) -> bool {
    matches!(
        change,
        Change::UseJti { .. } | Change::InsertTicket(_) | Change::LinkSubject { .. }
    )
}

/// The bulk changes (see [`is_bulk`]) of a batch, column by column.
#[derive(Default)]
pub(crate) struct BulkColumns {
    pub jti_key: Vec<String>,
    pub jti_expires_at: Vec<i64>,
    pub link_sector: Vec<String>,
    pub link_subject: Vec<String>,
    pub link_account_id: Vec<String>,
    pub link_created_at: Vec<i64>,
    pub tickets: TicketColumns,
}

/// Tickets to insert, column by column (the order of `ticket_columns!`).
#[derive(Default)]
pub(crate) struct TicketColumns {
    pub id: Vec<String>,
    pub consumer_id: Vec<String>,
    pub provider_id: Vec<String>,
    pub account_id: Vec<String>,
    pub purpose_id: Vec<String>,
    pub items: Vec<String>,
    pub basis: Vec<String>,
    pub requester: Vec<Option<String>>,
    pub reason: Vec<Option<String>>,
    pub issued_at: Vec<i64>,
    pub expires_at: Vec<i64>,
    pub consumer_receipt: Vec<Option<String>>,
    pub provider_receipt: Vec<Option<String>>,
    pub state: Vec<String>,
    pub updated_at: Vec<i64>,
}

impl TicketColumns {
    pub(crate) fn len(&self) -> usize {
        self.id.len()
    }

    fn push(&mut self, r: &TicketRow) {
        self.id.push(r.id.clone());
        self.consumer_id.push(r.consumer_id.clone());
        self.provider_id.push(r.provider_id.clone());
        self.account_id.push(r.account_id.clone());
        self.purpose_id.push(r.purpose_id.clone());
        self.items.push(items_json(&r.items));
        self.basis.push(r.basis.clone());
        self.requester.push(r.requester.clone());
        self.reason.push(r.reason.clone());
        self.issued_at.push(r.issued_at);
        self.expires_at.push(r.expires_at);
        self.consumer_receipt.push(r.consumer_receipt.clone());
        self.provider_receipt.push(r.provider_receipt.clone());
        self.state.push(r.state.clone());
        self.updated_at.push(r.updated_at);
    }
}

impl BulkColumns {
    pub(crate) fn of<'c>(commits: impl Iterator<Item = &'c Commit>) -> BulkColumns {
        let mut bulk = BulkColumns::default();
        for change in commits.flat_map(|c| c.changes.iter()) {
            match change {
                Change::UseJti { key, expires_at } => {
                    bulk.jti_key.push(key.clone());
                    bulk.jti_expires_at.push(*expires_at);
                }
                Change::LinkSubject {
                    sector,
                    subject,
                    account_id,
                    created_at,
                } => {
                    bulk.link_sector.push(sector.clone());
                    bulk.link_subject.push(subject.clone());
                    bulk.link_account_id.push(account_id.clone());
                    bulk.link_created_at.push(*created_at);
                }
                Change::InsertTicket(r) => bulk.tickets.push(r),
                _ => {}
            }
        }
        bulk
    }
}

/// Where each commit of an applied batch landed.
pub(crate) fn placements(commits: &[Commit], size_before: u64) -> (Vec<Result<Committed>>, u64) {
    let mut next = size_before;
    let results = commits
        .iter()
        .map(|c| {
            let committed = Committed {
                first_leaf: next,
                leaf_count: c.leaves.len() as u64,
            };
            next += committed.leaf_count;
            Ok(committed)
        })
        .collect();
    (results, next)
}

macro_rules! account_columns {
    () => {
        "id, level, status, attributes, card_binding, card_issuer, card_serial, card_not_after, version, created_at, updated_at"
    };
}

macro_rules! device_columns {
    () => {
        "id, account_id, jkt, jwk, status, failed_logins, locked_until, expires_at, created_at, revoked_at"
    };
}

// Statements both backends run as they are ($N parameters work in both).
pub(crate) const SQL_ACCOUNT_BY_ID: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM accounts WHERE id = $1"
);
pub(crate) const SQL_ACCOUNT_BY_CARD: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM accounts WHERE card_binding = $1"
);
pub(crate) const SQL_ACCOUNTS_WITH_CARD: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM accounts WHERE card_serial = $1 AND card_issuer = $2"
);
pub(crate) const SQL_DEVICE_BY_ID: &str =
    concat!("SELECT ", device_columns!(), " FROM devices WHERE id = $1");
pub(crate) const SQL_DEVICE_BY_JKT: &str =
    concat!("SELECT ", device_columns!(), " FROM devices WHERE jkt = $1");
pub(crate) const SQL_DEVICES_OF: &str = concat!(
    "SELECT ",
    device_columns!(),
    " FROM devices WHERE account_id = $1 ORDER BY created_at, id"
);
pub(crate) const SQL_INSERT_ACCOUNT: &str = concat!(
    "INSERT INTO accounts (",
    account_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
);
pub(crate) const SQL_UPDATE_ACCOUNT_PROOF: &str = "UPDATE accounts SET level = $1, status = $2, attributes = $3, card_binding = $4, card_issuer = $5, card_serial = $6, card_not_after = $7, version = version + 1, updated_at = $8 WHERE id = $9 AND version = $10";
pub(crate) const SQL_SET_ACCOUNT_STATUS: &str = "UPDATE accounts SET status = $1, version = version + 1, updated_at = $2 WHERE id = $3 AND status = $4";
pub(crate) const SQL_INSERT_DEVICE: &str = concat!(
    "INSERT INTO devices (",
    device_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
);
pub(crate) const SQL_REVOKE_DEVICE: &str =
    "UPDATE devices SET status = 'revoked', revoked_at = $1 WHERE id = $2 AND status = 'active'";
pub(crate) const SQL_SET_LOGIN_STATE: &str =
    "UPDATE devices SET failed_logins = $1, locked_until = $2 WHERE id = $3 AND failed_logins = $4";
pub(crate) const SQL_INSERT_SESSION: &str = "INSERT INTO sessions (token_hash, account_id, device_id, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const SQL_DELETE_DEVICE_SESSIONS: &str = "DELETE FROM sessions WHERE device_id = $1";
pub(crate) const SQL_DELETE_SESSION: &str = "DELETE FROM sessions WHERE token_hash = $1";
pub(crate) const SQL_SESSION: &str = "SELECT token_hash, account_id, device_id, expires_at, created_at FROM sessions WHERE token_hash = $1";
pub(crate) const SQL_PURGE_SESSIONS: &str = "DELETE FROM sessions WHERE expires_at <= $1";
pub(crate) const SQL_PUT_NONCE: &str =
    "INSERT INTO nonces (nonce, purpose, expires_at) VALUES ($1, $2, $3)";
pub(crate) const SQL_TAKE_NONCE: &str =
    "DELETE FROM nonces WHERE nonce = $1 AND purpose = $2 RETURNING expires_at";
pub(crate) const SQL_PURGE_NONCES: &str = "DELETE FROM nonces WHERE expires_at <= $1";
pub(crate) const SQL_LEDGER_SIZE: &str = "SELECT tree_size FROM ledger_head WHERE id = 1";
pub(crate) const SQL_SET_HEAD: &str = "UPDATE ledger_head SET tree_size = $1 WHERE id = 1";
pub(crate) const SQL_LEAF_HASHES: &str =
    "SELECT idx, leaf_hash FROM ledger_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx";
pub(crate) const SQL_LEAVES: &str = "SELECT idx, leaf_hash, leaf_input, created_at FROM ledger_leaves WHERE idx >= $1 AND idx < $2 ORDER BY idx";
pub(crate) const SQL_SUBJECT_LEAVES: &str = "SELECT l.idx, l.leaf_hash, l.leaf_input, l.created_at FROM ledger_subjects s JOIN ledger_leaves l ON l.idx = s.idx WHERE s.account_id = $1 AND s.idx < $2 ORDER BY s.idx DESC LIMIT $3";
pub(crate) const SQL_PUT_STH: &str = "INSERT INTO ledger_sths (tree_size, root_hash, timestamp, key_id, signature) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tree_size) DO NOTHING";
pub(crate) const SQL_LATEST_STH: &str = "SELECT tree_size, root_hash, timestamp, key_id, signature FROM ledger_sths ORDER BY tree_size DESC LIMIT 1";
pub(crate) const SQL_EXPIRE_LEAF_INPUTS: &str =
    "UPDATE ledger_leaves SET leaf_input = NULL WHERE created_at < $1 AND leaf_input IS NOT NULL";
pub(crate) const SQL_KEYS: &str = "SELECT name, purpose, kid, alg, secret, active, created_at FROM platform_keys WHERE purpose = $1 ORDER BY created_at, name";
pub(crate) const SQL_INSERT_KEY: &str = "INSERT INTO platform_keys (name, purpose, kid, alg, secret, active, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO NOTHING";

/// A name for a change, in conflict messages.
pub(crate) fn change_name(change: &Change) -> &'static str {
    match change {
        Change::InsertAccount(_) => "insert account",
        Change::UpdateAccountProof { .. } => "update account proof",
        Change::SetAccountStatus { .. } => "set account status",
        Change::InsertDevice(_) => "insert device",
        Change::RevokeDevice { .. } => "revoke device",
        Change::SetLoginState { .. } => "set login state",
        Change::InsertSession(_) => "insert session",
        Change::DeleteDeviceSessions { .. } => "delete device sessions",
        Change::InsertService(_) => "insert service",
        Change::InsertPurpose(_) => "insert purpose",
        Change::InsertVote(_) => "insert vote",
        Change::SetServiceStatus { .. } => "set service status",
        Change::InsertConsent(_) => "insert consent",
        Change::SetConsentStatus { .. } => "set consent status",
        Change::SetConsentExpiry { .. } => "set consent expiry",
        Change::InsertConsentChange { .. } => "insert consent change",
        Change::InsertConsentEvent(_) => "insert consent event",
        Change::UseResidentNonce { .. } => "use resident nonce",
        Change::LinkSubject { .. } => "link subject",
        Change::UseJti { .. } => "use jti (replayed assertion)",
        Change::InsertTicket(_) => "insert ticket",
        Change::SetReceipt { .. } => "set receipt",
        Change::CloseTicket { .. } => "close ticket",
        Change::InsertAlert(_) => "insert alert",
        Change::InsertAuthzRequest(_) => "insert authorization request",
        Change::SetAuthzLoginNonce { .. } => "set authorization request login nonce",
        Change::DeleteAuthzRequest { .. } => "delete authorization request",
        Change::InsertGrant(_) => "insert grant",
        Change::RevokeGrant { .. } => "revoke grant",
        Change::InsertCode(_) => "insert code",
        Change::UseCode { .. } => "use code (used or unknown)",
        Change::InsertOauthToken(_) => "insert oauth token",
        Change::UseRefreshToken { .. } => "use refresh token (used or unknown)",
        Change::SetClientSecret { .. } => "set client secret",
        Change::UpdateServiceRegistration { .. } => "update service registration",
        Change::DeleteSession { .. } => "delete session",
    }
}

/// A service kind as stored.
pub(crate) fn parse_kind(s: &str) -> Result<tsunagu_core::service::ServiceKind> {
    use tsunagu_core::service::ServiceKind;
    match s {
        "consumer" => Ok(ServiceKind::Consumer),
        "provider" => Ok(ServiceKind::Provider),
        "both" => Ok(ServiceKind::Both),
        _ => Err(corrupt("service kind")),
    }
}

/// Items (a JSON array of strings) as stored.
pub(crate) fn items_json(items: &[String]) -> String {
    serde_json::to_string(items).expect("a list of strings serializes")
}

pub(crate) fn parse_items(text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|_| corrupt("items"))
}

macro_rules! service_columns {
    () => {
        "id, name, organization, contact, kind, status, application, jwks, endpoint, lint, round, created_at, updated_at, client_secret_hash"
    };
}

macro_rules! purpose_columns {
    () => {
        "consumer_id, purpose_id, provider_id, legal_basis, items, definition, terms_sha256"
    };
}

macro_rules! consent_columns {
    () => {
        "id, account_id, consumer_id, provider_id, purpose_id, generation, items, expires_at, terms_sha256, status, jws, device_id, version, created_at, updated_at"
    };
}

macro_rules! ticket_columns {
    () => {
        "id, consumer_id, provider_id, account_id, purpose_id, items, basis, requester, reason, issued_at, expires_at, consumer_receipt, provider_receipt, state, updated_at"
    };
}

macro_rules! consent_event_columns {
    () => {
        "seq, consent_id, account_id, consumer_id, provider_id, purpose_id, status, items, expires_at, created_at"
    };
}

pub(crate) const SQL_INSERT_SERVICE: &str = concat!(
    "INSERT INTO services (",
    service_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
);
pub(crate) const SQL_SERVICE_BY_ID: &str = concat!(
    "SELECT ",
    service_columns!(),
    " FROM services WHERE id = $1"
);
pub(crate) const SQL_SERVICES_ALL: &str = concat!(
    "SELECT ",
    service_columns!(),
    " FROM services ORDER BY created_at DESC, id"
);
pub(crate) const SQL_SERVICES_BY_STATUS: &str = concat!(
    "SELECT ",
    service_columns!(),
    " FROM services WHERE status = $1 ORDER BY created_at DESC, id"
);
pub(crate) const SQL_SET_SERVICE_STATUS: &str = "UPDATE services SET status = $1, round = round + 1, updated_at = $2 WHERE id = $3 AND status = $4 AND round = $5";
pub(crate) const SQL_SET_CLIENT_SECRET: &str =
    "UPDATE services SET client_secret_hash = $1, updated_at = $2 WHERE id = $3";
pub(crate) const SQL_UPDATE_SERVICE_REGISTRATION: &str =
    "UPDATE services SET application = $1, jwks = $2, endpoint = $3, updated_at = $4 WHERE id = $5";

pub(crate) const SQL_INSERT_PURPOSE: &str = concat!(
    "INSERT INTO purposes (",
    purpose_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
);
pub(crate) const SQL_PURPOSE: &str = concat!(
    "SELECT ",
    purpose_columns!(),
    " FROM purposes WHERE consumer_id = $1 AND purpose_id = $2"
);
pub(crate) const SQL_ALL_PURPOSES: &str = concat!(
    "SELECT ",
    purpose_columns!(),
    " FROM purposes ORDER BY consumer_id, purpose_id"
);
pub(crate) const SQL_PURPOSES_OF: &str = concat!(
    "SELECT ",
    purpose_columns!(),
    " FROM purposes WHERE consumer_id = $1 ORDER BY purpose_id"
);

pub(crate) const SQL_INSERT_VOTE: &str = "INSERT INTO votes (member_id, nonce, service_id, round, decision, comment, issued_at, jws, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(crate) const SQL_VOTES: &str = "SELECT member_id, nonce, service_id, round, decision, comment, issued_at, jws, created_at FROM votes WHERE service_id = $1 AND round = $2 ORDER BY issued_at, created_at, member_id";

pub(crate) const SQL_INSERT_CONSENT: &str = concat!(
    "INSERT INTO consents (",
    consent_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
);
pub(crate) const SQL_CONSENT_BY_ID: &str = concat!(
    "SELECT ",
    consent_columns!(),
    " FROM consents WHERE id = $1"
);
pub(crate) const SQL_CONSENTS_OF: &str = concat!(
    "SELECT ",
    consent_columns!(),
    " FROM consents WHERE account_id = $1 ORDER BY created_at DESC, id DESC"
);
pub(crate) const SQL_LATEST_CONSENT: &str = concat!(
    "SELECT ",
    consent_columns!(),
    " FROM consents WHERE account_id = $1 AND consumer_id = $2 AND purpose_id = $3 ORDER BY generation DESC LIMIT 1"
);
pub(crate) const SQL_DUE_EXPIRATIONS: &str = concat!(
    "SELECT ",
    consent_columns!(),
    " FROM consents WHERE status = 'active' AND expires_at <= $1 ORDER BY expires_at LIMIT $2"
);
pub(crate) const SQL_SET_CONSENT_STATUS: &str = "UPDATE consents SET status = $1, version = version + 1, updated_at = $2 WHERE id = $3 AND status = $4";
pub(crate) const SQL_SET_CONSENT_EXPIRY: &str = "UPDATE consents SET expires_at = $1, version = version + 1, updated_at = $2 WHERE id = $3 AND version = $4 AND status = 'active'";
pub(crate) const SQL_INSERT_CONSENT_CHANGE: &str = "INSERT INTO consent_changes (consent_id, action, expires_at, jws, created_at) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const SQL_INSERT_CONSENT_EVENT: &str = "INSERT INTO consent_events (consent_id, account_id, consumer_id, provider_id, purpose_id, status, items, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(crate) const SQL_CONSENT_EVENTS: &str = concat!(
    "SELECT ",
    consent_event_columns!(),
    " FROM consent_events WHERE (consumer_id = $1 OR provider_id = $1) AND seq > $2 ORDER BY seq LIMIT $3"
);
pub(crate) const SQL_USE_RESIDENT_NONCE: &str =
    "INSERT INTO resident_nonces (account_id, nonce, expires_at) VALUES ($1, $2, $3)";
pub(crate) const SQL_PURGE_RESIDENT_NONCES: &str =
    "DELETE FROM resident_nonces WHERE expires_at <= $1";

pub(crate) const SQL_LINK_SUBJECT: &str = "INSERT INTO subjects (sector, subject, account_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING";
pub(crate) const SQL_ACCOUNT_FOR_SUBJECT: &str =
    "SELECT account_id FROM subjects WHERE sector = $1 AND subject = $2";
/// Everything a ticket decision reads, in one round trip: both services' statuses (so a
/// suspension counts from the next request, on every replica), the resident behind the
/// consumer's pairwise subject, and their latest consent to the purpose.
pub(crate) const SQL_TICKET_CONTEXT: &str = "SELECT cs.status AS consumer_status, ps.status AS provider_status, a.id AS account_id, a.level AS account_level, a.status AS account_status, c.id AS c_id, c.account_id AS c_account_id, c.consumer_id AS c_consumer_id, c.provider_id AS c_provider_id, c.purpose_id AS c_purpose_id, c.generation AS c_generation, c.items AS c_items, c.expires_at AS c_expires_at, c.terms_sha256 AS c_terms_sha256, c.status AS c_status, c.jws AS c_jws, c.device_id AS c_device_id, c.version AS c_version, c.created_at AS c_created_at, c.updated_at AS c_updated_at FROM services cs LEFT JOIN services ps ON ps.id = $4 LEFT JOIN subjects s ON s.sector = $1 AND s.subject = $3 LEFT JOIN accounts a ON a.id = s.account_id LEFT JOIN consents c ON c.id = (SELECT c2.id FROM consents c2 WHERE c2.account_id = s.account_id AND c2.consumer_id = $1 AND c2.purpose_id = $2 ORDER BY c2.generation DESC LIMIT 1) WHERE cs.id = $1";
pub(crate) const SQL_CONSENT_HISTORY: &str = concat!(
    "SELECT ",
    consent_event_columns!(),
    " FROM consent_events WHERE consent_id = $1 ORDER BY seq"
);

/// The head of a multi-row ticket INSERT (the optimistic batch path).
pub(crate) const SQL_INSERT_TICKETS_HEAD: &str =
    concat!("INSERT INTO tickets (", ticket_columns!(), ")");
pub(crate) const SQL_INSERT_TICKET: &str = concat!(
    "INSERT INTO tickets (",
    ticket_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
);
pub(crate) const SQL_TICKET_BY_ID: &str =
    concat!("SELECT ", ticket_columns!(), " FROM tickets WHERE id = $1");
pub(crate) const SQL_OVERDUE_TICKETS: &str = concat!(
    "SELECT ",
    ticket_columns!(),
    " FROM tickets WHERE state = 'open' AND expires_at < $1 ORDER BY expires_at LIMIT $2"
);
pub(crate) const SQL_TICKETS_OF: &str = concat!(
    "SELECT ",
    ticket_columns!(),
    " FROM tickets WHERE account_id = $1 ORDER BY issued_at DESC, id LIMIT $2"
);
pub(crate) const SQL_SET_CONSUMER_RECEIPT: &str = "UPDATE tickets SET consumer_receipt = $1, updated_at = $2 WHERE id = $3 AND consumer_receipt IS NULL";
pub(crate) const SQL_SET_PROVIDER_RECEIPT: &str = "UPDATE tickets SET provider_receipt = $1, updated_at = $2 WHERE id = $3 AND provider_receipt IS NULL";
pub(crate) const SQL_CLOSE_TICKET: &str =
    "UPDATE tickets SET state = $1, updated_at = $2 WHERE id = $3 AND state = 'open'";

pub(crate) const SQL_INSERT_ALERT: &str =
    "INSERT INTO alerts (kind, service_id, detail, created_at) VALUES ($1, $2, $3, $4)";
pub(crate) const SQL_ALERTS: &str = "SELECT seq, kind, service_id, detail, created_at FROM alerts WHERE seq > $1 ORDER BY seq LIMIT $2";
pub(crate) const SQL_TICKET_COUNTS: &str = "SELECT 'consumer' AS role, state, COUNT(*) AS n FROM tickets WHERE consumer_id = $1 GROUP BY state UNION ALL SELECT 'provider' AS role, state, COUNT(*) AS n FROM tickets WHERE provider_id = $1 GROUP BY state ORDER BY role, state";

macro_rules! authz_request_columns {
    () => {
        "id, client_id, params, pushed, login_nonce, expires_at, created_at"
    };
}

macro_rules! grant_columns {
    () => {
        "id, client_id, account_id, device_id, scope, items, consent_id, auth_time, created_at, revoked_at, revoked_reason"
    };
}

/// A grant's columns in a join, prefixed `g_` (read back with the `g_` prefix).
macro_rules! joined_grant_columns {
    () => {
        "g.id AS g_id, g.client_id AS g_client_id, g.account_id AS g_account_id, g.device_id AS g_device_id, g.scope AS g_scope, g.items AS g_items, g.consent_id AS g_consent_id, g.auth_time AS g_auth_time, g.created_at AS g_created_at, g.revoked_at AS g_revoked_at, g.revoked_reason AS g_revoked_reason"
    };
}

macro_rules! code_columns {
    () => {
        "code_hash, grant_id, redirect_uri, code_challenge, nonce, dpop_jkt, expires_at, used_at, created_at"
    };
}

macro_rules! oauth_token_columns {
    () => {
        "token_hash, grant_id, kind, scope, dpop_jkt, expires_at, used_at, created_at"
    };
}

pub(crate) const SQL_INSERT_AUTHZ_REQUEST: &str = concat!(
    "INSERT INTO oauth_requests (",
    authz_request_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
);
pub(crate) const SQL_AUTHZ_REQUEST_BY_ID: &str = concat!(
    "SELECT ",
    authz_request_columns!(),
    " FROM oauth_requests WHERE id = $1"
);
pub(crate) const SQL_AUTHZ_REQUEST_BY_LOGIN_NONCE: &str = concat!(
    "SELECT ",
    authz_request_columns!(),
    " FROM oauth_requests WHERE login_nonce = $1"
);
pub(crate) const SQL_SET_AUTHZ_LOGIN_NONCE: &str =
    "UPDATE oauth_requests SET login_nonce = $1 WHERE id = $2";
pub(crate) const SQL_DELETE_AUTHZ_REQUEST: &str = "DELETE FROM oauth_requests WHERE id = $1";

pub(crate) const SQL_INSERT_GRANT: &str = concat!(
    "INSERT INTO oauth_grants (",
    grant_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
);
pub(crate) const SQL_GRANT_BY_ID: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM oauth_grants WHERE id = $1"
);
pub(crate) const SQL_GRANTS_OF: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM oauth_grants WHERE account_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
);
pub(crate) const SQL_COUNT_ACTIVE_GRANTS: &str =
    "SELECT COUNT(*) AS n FROM oauth_grants WHERE client_id = $1 AND revoked_at IS NULL";
/// Matches any existing grant, so that revoking twice is not a conflict; the first
/// revocation's time and reason stay (the right-hand sides read the row before the update).
pub(crate) const SQL_REVOKE_GRANT: &str = "UPDATE oauth_grants SET revoked_at = COALESCE(revoked_at, $1), revoked_reason = CASE WHEN revoked_at IS NULL THEN $2 ELSE revoked_reason END WHERE id = $3";

pub(crate) const SQL_INSERT_CODE: &str = concat!(
    "INSERT INTO oauth_codes (",
    code_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
);
pub(crate) const SQL_CODE: &str = concat!(
    "SELECT c.code_hash AS code_hash, c.grant_id AS grant_id, c.redirect_uri AS redirect_uri, c.code_challenge AS code_challenge, c.nonce AS nonce, c.dpop_jkt AS dpop_jkt, c.expires_at AS expires_at, c.used_at AS used_at, c.created_at AS created_at, ",
    joined_grant_columns!(),
    " FROM oauth_codes c JOIN oauth_grants g ON g.id = c.grant_id WHERE c.code_hash = $1"
);
pub(crate) const SQL_USE_CODE: &str =
    "UPDATE oauth_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL";

pub(crate) const SQL_INSERT_OAUTH_TOKEN: &str = concat!(
    "INSERT INTO oauth_tokens (",
    oauth_token_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
);
pub(crate) const SQL_OAUTH_TOKEN: &str = concat!(
    "SELECT t.token_hash AS token_hash, t.grant_id AS grant_id, t.kind AS kind, t.scope AS scope, t.dpop_jkt AS dpop_jkt, t.expires_at AS expires_at, t.used_at AS used_at, t.created_at AS created_at, ",
    joined_grant_columns!(),
    " FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id WHERE t.token_hash = $1"
);
pub(crate) const SQL_USE_REFRESH_TOKEN: &str = "UPDATE oauth_tokens SET used_at = $1 WHERE token_hash = $2 AND kind = 'refresh' AND used_at IS NULL";

/// Codes and tokens are kept for a day after they expire, so that a replay of a used one is
/// still recognised as a replay (and its grant revoked) rather than taken for an unknown one.
pub(crate) const OIDC_RETENTION_SECS: i64 = 86_400;
pub(crate) const SQL_PURGE_AUTHZ_REQUESTS: &str =
    "DELETE FROM oauth_requests WHERE expires_at < $1";
pub(crate) const SQL_PURGE_CODES: &str = "DELETE FROM oauth_codes WHERE expires_at < $1";
pub(crate) const SQL_PURGE_OAUTH_TOKENS: &str = "DELETE FROM oauth_tokens WHERE expires_at < $1";
