//! Services, their purposes and the committee's votes.

use crate::commit::Change;
use crate::identity::{all, one};
use crate::sql::{Conn, RowReader, expect_one, string_list};
use crate::{Result, ServiceStore, SqlStore, params};
use async_trait::async_trait;
use tsunagu_core::governance::Decision;
use tsunagu_core::service::{LegalBasis, ServiceKind, ServiceStatus};
use tsunagu_core::{MemberId, PurposeId, ServiceId};

/// A service row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow {
    pub id: ServiceId,
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
    /// The `x5t#S256` of the client certificate the service registered for mutual TLS.
    pub client_cert_sha256: Option<String>,
}

/// A purpose of a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurposeRow {
    pub consumer_id: ServiceId,
    pub purpose_id: PurposeId,
    pub provider_id: ServiceId,
    pub legal_basis: LegalBasis,
    pub items: Vec<String>,
    /// The purpose as applied for (JSON).
    pub definition: String,
    pub terms_sha256: String,
}

/// A committee vote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteRow {
    pub member_id: MemberId,
    pub nonce: String,
    pub service_id: ServiceId,
    pub round: i64,
    pub decision: Decision,
    pub comment: String,
    pub issued_at: i64,
    pub jws: String,
    pub created_at: i64,
}

/// A change to services, purposes or votes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceChange {
    InsertService(ServiceRow),
    InsertPurpose(PurposeRow),
    /// Refused (conflict) when this member already used this nonce.
    InsertVote(VoteRow),
    /// Sets the status if it is still `from` in round `round`, and starts the next round.
    SetServiceStatus {
        id: ServiceId,
        from: ServiceStatus,
        to: ServiceStatus,
        round: i64,
        updated_at: i64,
    },
    /// Sets or clears a service's client secret hash (refused if there is no such service).
    SetClientSecret {
        service_id: ServiceId,
        secret_hash: Option<String>,
        updated_at: i64,
    },
    /// Replaces a service's application, JWKS, endpoint and client certificate (refused if
    /// there is no such service, or if another service registered the certificate).
    UpdateServiceRegistration {
        id: ServiceId,
        application: String,
        jwks: String,
        endpoint: Option<String>,
        client_cert_sha256: Option<String>,
        updated_at: i64,
    },
}

macro_rules! service_columns {
    () => {
        "id, name, organization, contact, kind, status, application, jwks, endpoint, lint, round, created_at, updated_at, client_secret_hash, client_cert_sha256"
    };
}

macro_rules! purpose_columns {
    () => {
        "consumer_id, purpose_id, provider_id, legal_basis, items, definition, terms_sha256"
    };
}

const SQL_INSERT_SERVICE: &str = concat!(
    "INSERT INTO services (",
    service_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
);
const SQL_SERVICE_BY_ID: &str = concat!(
    "SELECT ",
    service_columns!(),
    " FROM services WHERE id = $1"
);
const SQL_SERVICES_ALL: &str = concat!(
    "SELECT ",
    service_columns!(),
    " FROM services ORDER BY created_at DESC, id"
);
const SQL_SERVICES_BY_STATUS: &str = concat!(
    "SELECT ",
    service_columns!(),
    " FROM services WHERE status = $1 ORDER BY created_at DESC, id"
);
const SQL_SET_SERVICE_STATUS: &str = "UPDATE services SET status = $1, round = round + 1, updated_at = $2 WHERE id = $3 AND status = $4 AND round = $5";
const SQL_SET_CLIENT_SECRET: &str =
    "UPDATE services SET client_secret_hash = $1, updated_at = $2 WHERE id = $3";
const SQL_UPDATE_SERVICE_REGISTRATION: &str = "UPDATE services SET application = $1, jwks = $2, endpoint = $3, client_cert_sha256 = $4, updated_at = $5 WHERE id = $6";
const SQL_SERVICE_BY_CLIENT_CERT: &str = "SELECT id FROM services WHERE client_cert_sha256 = $1";
const SQL_INSERT_PURPOSE: &str = concat!(
    "INSERT INTO purposes (",
    purpose_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7)"
);
const SQL_PURPOSE: &str = concat!(
    "SELECT ",
    purpose_columns!(),
    " FROM purposes WHERE consumer_id = $1 AND purpose_id = $2"
);
const SQL_ALL_PURPOSES: &str = concat!(
    "SELECT ",
    purpose_columns!(),
    " FROM purposes ORDER BY consumer_id, purpose_id"
);
const SQL_PURPOSES_OF: &str = concat!(
    "SELECT ",
    purpose_columns!(),
    " FROM purposes WHERE consumer_id = $1 ORDER BY purpose_id"
);
const SQL_INSERT_VOTE: &str = "INSERT INTO votes (member_id, nonce, service_id, round, decision, comment, issued_at, jws, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
const SQL_VOTES: &str = "SELECT member_id, nonce, service_id, round, decision, comment, issued_at, jws, created_at FROM votes WHERE service_id = $1 AND round = $2 ORDER BY issued_at, created_at, member_id";

fn service_row(r: &mut RowReader) -> Result<ServiceRow> {
    Ok(ServiceRow {
        id: r.id()?,
        name: r.text()?,
        organization: r.text()?,
        contact: r.text()?,
        kind: r.parsed("service kind", ServiceKind::parse)?,
        status: r.parsed("service status", ServiceStatus::parse)?,
        application: r.text()?,
        jwks: r.text()?,
        endpoint: r.opt_text()?,
        lint: r.text()?,
        round: r.int()?,
        created_at: r.int()?,
        updated_at: r.int()?,
        client_secret_hash: r.opt_text()?,
        client_cert_sha256: r.opt_text()?,
    })
}

fn purpose_row(r: &mut RowReader) -> Result<PurposeRow> {
    Ok(PurposeRow {
        consumer_id: r.id()?,
        purpose_id: r.id()?,
        provider_id: r.id()?,
        legal_basis: r.parsed("legal basis", LegalBasis::parse)?,
        items: r.string_list()?,
        definition: r.text()?,
        terms_sha256: r.text()?,
    })
}

fn vote_row(r: &mut RowReader) -> Result<VoteRow> {
    Ok(VoteRow {
        member_id: r.id()?,
        nonce: r.text()?,
        service_id: r.id()?,
        round: r.int()?,
        decision: r.parsed("vote decision", Decision::parse)?,
        comment: r.text()?,
        issued_at: r.int()?,
        jws: r.text()?,
        created_at: r.int()?,
    })
}

impl Change for ServiceChange {
    fn apply(&self, conn: &mut dyn Conn) -> Result<()> {
        match self {
            ServiceChange::InsertService(r) => {
                let n = conn.execute(
                    SQL_INSERT_SERVICE,
                    &params![
                        &r.id,
                        &r.name,
                        &r.organization,
                        &r.contact,
                        r.kind.as_str(),
                        r.status.as_str(),
                        &r.application,
                        &r.jwks,
                        &r.endpoint,
                        &r.lint,
                        r.round,
                        r.created_at,
                        r.updated_at,
                        &r.client_secret_hash,
                        &r.client_cert_sha256,
                    ],
                )?;
                expect_one(n, "insert service")
            }
            ServiceChange::InsertPurpose(r) => {
                let n = conn.execute(
                    SQL_INSERT_PURPOSE,
                    &params![
                        &r.consumer_id,
                        &r.purpose_id,
                        &r.provider_id,
                        r.legal_basis.as_str(),
                        string_list(&r.items),
                        &r.definition,
                        &r.terms_sha256,
                    ],
                )?;
                expect_one(n, "insert purpose")
            }
            ServiceChange::InsertVote(r) => {
                let n = conn.execute(
                    SQL_INSERT_VOTE,
                    &params![
                        &r.member_id,
                        &r.nonce,
                        &r.service_id,
                        r.round,
                        r.decision.as_str(),
                        &r.comment,
                        r.issued_at,
                        &r.jws,
                        r.created_at,
                    ],
                )?;
                expect_one(n, "insert vote")
            }
            ServiceChange::SetServiceStatus {
                id,
                from,
                to,
                round,
                updated_at,
            } => {
                let n = conn.execute(
                    SQL_SET_SERVICE_STATUS,
                    &params![to.as_str(), *updated_at, id, from.as_str(), *round],
                )?;
                expect_one(n, "set service status")
            }
            ServiceChange::SetClientSecret {
                service_id,
                secret_hash,
                updated_at,
            } => {
                let n = conn.execute(
                    SQL_SET_CLIENT_SECRET,
                    &params![secret_hash, *updated_at, service_id],
                )?;
                expect_one(n, "set client secret")
            }
            ServiceChange::UpdateServiceRegistration {
                id,
                application,
                jwks,
                endpoint,
                client_cert_sha256,
                updated_at,
            } => {
                let n = conn.execute(
                    SQL_UPDATE_SERVICE_REGISTRATION,
                    &params![
                        application,
                        jwks,
                        endpoint,
                        client_cert_sha256,
                        *updated_at,
                        id
                    ],
                )?;
                expect_one(n, "update service registration")
            }
        }
    }
}

#[async_trait]
impl ServiceStore for SqlStore {
    async fn service(&self, id: &ServiceId) -> Result<Option<ServiceRow>> {
        let id = id.clone();
        self.db
            .read(move |c| one(c.query_opt(SQL_SERVICE_BY_ID, &params![&id])?, service_row))
            .await
    }

    async fn service_by_client_cert(&self, x5t_s256: &str) -> Result<Option<ServiceId>> {
        let x5t_s256 = x5t_s256.to_owned();
        self.db
            .read(move |c| {
                one(
                    c.query_opt(SQL_SERVICE_BY_CLIENT_CERT, &params![&x5t_s256])?,
                    |r| r.id(),
                )
            })
            .await
    }

    async fn services(&self, status: Option<ServiceStatus>) -> Result<Vec<ServiceRow>> {
        self.db
            .read(move |c| {
                let rows = match status {
                    Some(status) => c.query(SQL_SERVICES_BY_STATUS, &params![status.as_str()])?,
                    None => c.query(SQL_SERVICES_ALL, &[])?,
                };
                all(rows, service_row)
            })
            .await
    }

    async fn purpose(
        &self,
        consumer_id: &ServiceId,
        purpose_id: &PurposeId,
    ) -> Result<Option<PurposeRow>> {
        let (consumer_id, purpose_id) = (consumer_id.clone(), purpose_id.clone());
        self.db
            .read(move |c| {
                one(
                    c.query_opt(SQL_PURPOSE, &params![&consumer_id, &purpose_id])?,
                    purpose_row,
                )
            })
            .await
    }

    async fn all_purposes(&self) -> Result<Vec<PurposeRow>> {
        self.db
            .read(|c| all(c.query(SQL_ALL_PURPOSES, &[])?, purpose_row))
            .await
    }

    async fn purposes_of(&self, consumer_id: &ServiceId) -> Result<Vec<PurposeRow>> {
        let consumer_id = consumer_id.clone();
        self.db
            .read(move |c| {
                all(
                    c.query(SQL_PURPOSES_OF, &params![&consumer_id])?,
                    purpose_row,
                )
            })
            .await
    }

    async fn votes(&self, service_id: &ServiceId, round: i64) -> Result<Vec<VoteRow>> {
        let service_id = service_id.clone();
        self.db
            .read(move |c| all(c.query(SQL_VOTES, &params![&service_id, round])?, vote_row))
            .await
    }
}
