//! The PostgreSQL backend (tokio-postgres with a deadpool pool). Any number of server
//! replicas share one database: the ledger head row, locked `FOR UPDATE` at the start of a
//! batch, orders leaf indices across replicas; nonces, sessions and rate counters are rows.
//!
//! tokio-postgres sets `TCP_NODELAY` (sqlx 0.9.0 does not: sqlx#4335), so statements carrying
//! a thousand leaves do not wait for delayed ACKs; see docs/adr/0004-postgres-driver.md.

use crate::common::*;
use crate::*;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Transaction,
};
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tsunagu_core::consent::ConsentStatus;
use tsunagu_core::identity::{AccountStatus, DeviceStatus, Level};
use tsunagu_core::service::{LegalBasis, ServiceStatus};

/// PostgreSQL store.
pub struct PgStore {
    pool: Pool,
}

/// Migrations, in order. Applied once each, under an advisory lock, in one transaction.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "identity_ledger",
        include_str!("../migrations/postgres/0001_identity_ledger.sql"),
    ),
    (
        2,
        "services_consents_exchange",
        include_str!("../migrations/postgres/0002_services_consents_exchange.sql"),
    ),
    (
        3,
        "oidc",
        include_str!("../migrations/postgres/0003_oidc.sql"),
    ),
];

/// Key of the advisory lock that serializes migrations between replicas.
const MIGRATION_LOCK: i64 = 0x0074_7375_6e61_6775;

fn map_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION
            || *code == SqlState::FOREIGN_KEY_VIOLATION
            || *code == SqlState::CHECK_VIOLATION
        {
            return StoreError::Conflict(db.message().to_owned());
        }
        if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
        {
            return StoreError::Unavailable(db.message().to_owned());
        }
        return StoreError::Database(db.message().to_owned());
    }
    if e.is_closed() {
        return StoreError::Unavailable(e.to_string());
    }
    StoreError::Unavailable(e.to_string())
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => map_err(e),
        other => StoreError::Unavailable(other.to_string()),
    }
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, column: &str) -> Result<T> {
    row.try_get(column)
        .map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}

/// TLS for connections that use it. Server certificates are always verified: against the
/// Mozilla roots, plus the PEM file named by `PGSSLROOTCERT` (as libpq) for a private CA.
fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Ok(path) = std::env::var("PGSSLROOTCERT") {
        use rustls::pki_types::pem::PemObject;
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(&path)
            .map_err(|e| StoreError::Unavailable(format!("PGSSLROOTCERT {path}: {e}")))?;
        for cert in certs {
            let cert =
                cert.map_err(|e| StoreError::Unavailable(format!("PGSSLROOTCERT {path}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| StoreError::Unavailable(format!("PGSSLROOTCERT {path}: {e}")))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| StoreError::Unavailable(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

fn check_schema(schema: &str) -> Result<()> {
    if schema.is_empty()
        || !schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(StoreError::Database(format!("schema name `{schema}`")));
    }
    Ok(())
}

/// Whether every host is this machine (a loopback address or a Unix socket).
fn local_only(config: &tokio_postgres::Config) -> bool {
    config.get_hosts().iter().all(|host| match host {
        tokio_postgres::config::Host::Tcp(name) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        #[cfg(unix)]
        tokio_postgres::config::Host::Unix(_) => true,
    })
}

/// `sslmode=prefer` (the default) means TLS when the server offers it; on this machine
/// (loopback or a Unix socket) there is nothing to protect and servers often hold
/// self-signed certificates, so it means no TLS there. `require` always means verified TLS.
fn apply_ssl_policy(config: &mut tokio_postgres::Config) {
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Prefer && local_only(config) {
        config.ssl_mode(tokio_postgres::config::SslMode::Disable);
    }
}

fn pool_for(config: tokio_postgres::Config, size: usize) -> Result<Pool> {
    let manager = Manager::from_config(
        config,
        tls()?,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(10)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::Unavailable(e.to_string()))
}

/// Connects to PostgreSQL (TLS when the server offers it or `sslmode=require`) and
/// migrates. With `schema`, everything lives in that schema (created if missing): the test
/// suite gives every test its own.
pub async fn open_postgres(url: &str, schema: Option<&str>) -> Result<PgStore> {
    let mut config = tokio_postgres::Config::from_str(url)
        .map_err(|e| StoreError::Unavailable(format!("database_url: {e}")))?;
    config.connect_timeout(Duration::from_secs(10));
    apply_ssl_policy(&mut config);
    if let Some(schema) = schema {
        check_schema(schema)?;
        let admin = pool_for(config.clone(), 1)?;
        let client = admin.get().await.map_err(pool_err)?;
        client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await
            .map_err(map_err)?;
        config.options(format!("-c search_path={schema}"));
    }
    let pool = pool_for(config, 16)?;
    let store = PgStore { pool };
    store.migrate().await?;
    Ok(store)
}

impl PgStore {
    async fn migrate(&self) -> Result<()> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(map_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(map_err)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS tsunagu_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .map_err(map_err)?;
        let applied: Vec<i64> = tx
            .query("SELECT version FROM tsunagu_migrations", &[])
            .await
            .map_err(map_err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (version, name, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            tx.batch_execute(sql).await.map_err(|e| {
                StoreError::Database(format!("migration {version} {name}: {}", map_err(e)))
            })?;
            tx.execute(
                "INSERT INTO tsunagu_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await
            .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)
    }

    /// Drops a schema made by [`open_postgres`] (test clean-up).
    pub async fn drop_schema(url: &str, schema: &str) -> Result<()> {
        check_schema(schema)?;
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("database_url: {e}")))?;
        apply_ssl_policy(&mut config);
        let admin = pool_for(config, 1)?;
        let client = admin.get().await.map_err(pool_err)?;
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn query_opt(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Option<Row>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let statement = client.prepare_cached(sql).await.map_err(map_err)?;
        client.query_opt(&statement, params).await.map_err(map_err)
    }

    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let statement = client.prepare_cached(sql).await.map_err(map_err)?;
        client.query(&statement, params).await.map_err(map_err)
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let statement = client.prepare_cached(sql).await.map_err(map_err)?;
        client.execute(&statement, params).await.map_err(map_err)
    }

    fn account_row(row: &Row) -> Result<AccountRow> {
        let level: String = get(row, "level")?;
        let status: String = get(row, "status")?;
        let card = match get::<Option<String>>(row, "card_binding")? {
            Some(binding) => Some(CardRef {
                binding,
                issuer: get::<Option<Vec<u8>>>(row, "card_issuer")?
                    .ok_or_else(|| corrupt("card_issuer"))?,
                serial: get::<Option<Vec<u8>>>(row, "card_serial")?
                    .ok_or_else(|| corrupt("card_serial"))?,
                not_after: get::<Option<i64>>(row, "card_not_after")?
                    .ok_or_else(|| corrupt("card_not_after"))?,
            }),
            None => None,
        };
        Ok(AccountRow {
            id: get(row, "id")?,
            level: Level::parse(&level).ok_or_else(|| corrupt("account level"))?,
            status: AccountStatus::parse(&status).ok_or_else(|| corrupt("account status"))?,
            attributes: get(row, "attributes")?,
            card,
            version: get(row, "version")?,
            created_at: get(row, "created_at")?,
            updated_at: get(row, "updated_at")?,
        })
    }

    fn device_row(row: &Row) -> Result<DeviceRow> {
        let status: String = get(row, "status")?;
        Ok(DeviceRow {
            id: get(row, "id")?,
            account_id: get(row, "account_id")?,
            jkt: get(row, "jkt")?,
            jwk: get(row, "jwk")?,
            status: DeviceStatus::parse(&status).ok_or_else(|| corrupt("device status"))?,
            failed_logins: get(row, "failed_logins")?,
            locked_until: get(row, "locked_until")?,
            expires_at: get(row, "expires_at")?,
            created_at: get(row, "created_at")?,
            revoked_at: get(row, "revoked_at")?,
        })
    }

    fn service_row(row: &Row) -> Result<ServiceRow> {
        let kind: String = get(row, "kind")?;
        let status: String = get(row, "status")?;
        Ok(ServiceRow {
            id: get(row, "id")?,
            name: get(row, "name")?,
            organization: get(row, "organization")?,
            contact: get(row, "contact")?,
            kind: parse_kind(&kind)?,
            status: ServiceStatus::parse(&status).ok_or_else(|| corrupt("service status"))?,
            application: get(row, "application")?,
            jwks: get(row, "jwks")?,
            endpoint: get(row, "endpoint")?,
            lint: get(row, "lint")?,
            round: get(row, "round")?,
            created_at: get(row, "created_at")?,
            updated_at: get(row, "updated_at")?,
            client_secret_hash: get(row, "client_secret_hash")?,
        })
    }

    fn purpose_row(row: &Row) -> Result<PurposeRow> {
        let basis: String = get(row, "legal_basis")?;
        let items: String = get(row, "items")?;
        Ok(PurposeRow {
            consumer_id: get(row, "consumer_id")?,
            purpose_id: get(row, "purpose_id")?,
            provider_id: get(row, "provider_id")?,
            legal_basis: LegalBasis::parse(&basis).ok_or_else(|| corrupt("legal basis"))?,
            items: parse_items(&items)?,
            definition: get(row, "definition")?,
            terms_sha256: get(row, "terms_sha256")?,
        })
    }

    /// A consent row; `p` prefixes the column names (`c_` in the ticket context query).
    fn consent_row(row: &Row, p: &str) -> Result<ConsentRow> {
        let col = |name: &str| format!("{p}{name}");
        let status: String = get(row, &col("status"))?;
        let items: String = get(row, &col("items"))?;
        Ok(ConsentRow {
            id: get(row, &col("id"))?,
            account_id: get(row, &col("account_id"))?,
            consumer_id: get(row, &col("consumer_id"))?,
            provider_id: get(row, &col("provider_id"))?,
            purpose_id: get(row, &col("purpose_id"))?,
            generation: get(row, &col("generation"))?,
            items: parse_items(&items)?,
            expires_at: get(row, &col("expires_at"))?,
            terms_sha256: get(row, &col("terms_sha256"))?,
            status: ConsentStatus::parse(&status).ok_or_else(|| corrupt("consent status"))?,
            jws: get(row, &col("jws"))?,
            device_id: get(row, &col("device_id"))?,
            version: get(row, &col("version"))?,
            created_at: get(row, &col("created_at"))?,
            updated_at: get(row, &col("updated_at"))?,
        })
    }

    fn consent_event_row(r: &Row) -> Result<ConsentEventRow> {
        let items: String = get(r, "items")?;
        Ok(ConsentEventRow {
            seq: get(r, "seq")?,
            consent_id: get(r, "consent_id")?,
            account_id: get(r, "account_id")?,
            consumer_id: get(r, "consumer_id")?,
            provider_id: get(r, "provider_id")?,
            purpose_id: get(r, "purpose_id")?,
            status: get(r, "status")?,
            items: parse_items(&items)?,
            expires_at: get(r, "expires_at")?,
            created_at: get(r, "created_at")?,
        })
    }

    fn ticket_row(row: &Row) -> Result<TicketRow> {
        let items: String = get(row, "items")?;
        Ok(TicketRow {
            id: get(row, "id")?,
            consumer_id: get(row, "consumer_id")?,
            provider_id: get(row, "provider_id")?,
            account_id: get(row, "account_id")?,
            purpose_id: get(row, "purpose_id")?,
            items: parse_items(&items)?,
            basis: get(row, "basis")?,
            requester: get(row, "requester")?,
            reason: get(row, "reason")?,
            issued_at: get(row, "issued_at")?,
            expires_at: get(row, "expires_at")?,
            consumer_receipt: get(row, "consumer_receipt")?,
            provider_receipt: get(row, "provider_receipt")?,
            state: get(row, "state")?,
            updated_at: get(row, "updated_at")?,
        })
    }

    fn authz_request_row(row: &Row) -> Result<AuthzRequestRow> {
        Ok(AuthzRequestRow {
            id: get(row, "id")?,
            client_id: get(row, "client_id")?,
            params: get(row, "params")?,
            pushed: get(row, "pushed")?,
            login_nonce: get(row, "login_nonce")?,
            expires_at: get(row, "expires_at")?,
            created_at: get(row, "created_at")?,
        })
    }

    /// A grant row; `p` prefixes the column names (`g_` when joined to a code or token).
    fn grant_row(row: &Row, p: &str) -> Result<GrantRow> {
        let col = |name: &str| format!("{p}{name}");
        let items: String = get(row, &col("items"))?;
        Ok(GrantRow {
            id: get(row, &col("id"))?,
            client_id: get(row, &col("client_id"))?,
            account_id: get(row, &col("account_id"))?,
            device_id: get(row, &col("device_id"))?,
            scope: get(row, &col("scope"))?,
            items: parse_items(&items)?,
            consent_id: get(row, &col("consent_id"))?,
            auth_time: get(row, &col("auth_time"))?,
            created_at: get(row, &col("created_at"))?,
            revoked_at: get(row, &col("revoked_at"))?,
            revoked_reason: get(row, &col("revoked_reason"))?,
        })
    }

    fn code_row(row: &Row) -> Result<CodeRow> {
        Ok(CodeRow {
            code_hash: get(row, "code_hash")?,
            grant_id: get(row, "grant_id")?,
            redirect_uri: get(row, "redirect_uri")?,
            code_challenge: get(row, "code_challenge")?,
            nonce: get(row, "nonce")?,
            dpop_jkt: get(row, "dpop_jkt")?,
            expires_at: get(row, "expires_at")?,
            used_at: get(row, "used_at")?,
            created_at: get(row, "created_at")?,
        })
    }

    fn oauth_token_row(row: &Row) -> Result<OauthTokenRow> {
        let kind: String = get(row, "kind")?;
        Ok(OauthTokenRow {
            token_hash: get(row, "token_hash")?,
            grant_id: get(row, "grant_id")?,
            kind: TokenKind::parse(&kind).ok_or_else(|| corrupt("token kind"))?,
            scope: get(row, "scope")?,
            dpop_jkt: get(row, "dpop_jkt")?,
            expires_at: get(row, "expires_at")?,
            used_at: get(row, "used_at")?,
            created_at: get(row, "created_at")?,
        })
    }

    fn leaf_row(row: &Row) -> Result<LeafRow> {
        Ok(LeafRow {
            index: to_u64(get(row, "idx")?)?,
            hash: hash32(get(row, "leaf_hash")?)?,
            input: get(row, "leaf_input")?,
            created_at: get(row, "created_at")?,
        })
    }

    async fn exec(tx: &Transaction<'_>, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64> {
        let statement = tx.prepare_cached(sql).await.map_err(map_err)?;
        tx.execute(&statement, params).await.map_err(map_err)
    }

    async fn apply(tx: &Transaction<'_>, change: &Change) -> Result<()> {
        let affected = match change {
            Change::InsertAccount(a) => {
                let card = a.card.as_ref();
                Self::exec(
                    tx,
                    SQL_INSERT_ACCOUNT,
                    &[
                        &a.id,
                        &a.level.as_str(),
                        &a.status.as_str(),
                        &a.attributes,
                        &card.map(|c| c.binding.as_str()),
                        &card.map(|c| c.issuer.as_slice()),
                        &card.map(|c| c.serial.as_slice()),
                        &card.map(|c| c.not_after),
                        &a.version,
                        &a.created_at,
                        &a.updated_at,
                    ],
                )
                .await?
            }
            Change::UpdateAccountProof {
                id,
                expected_version,
                level,
                status,
                attributes,
                card,
                updated_at,
            } => {
                Self::exec(
                    tx,
                    SQL_UPDATE_ACCOUNT_PROOF,
                    &[
                        &level.as_str(),
                        &status.as_str(),
                        attributes,
                        &card.binding,
                        &card.issuer,
                        &card.serial,
                        &card.not_after,
                        updated_at,
                        id,
                        expected_version,
                    ],
                )
                .await?
            }
            Change::SetAccountStatus {
                id,
                from,
                to,
                updated_at,
            } => {
                Self::exec(
                    tx,
                    SQL_SET_ACCOUNT_STATUS,
                    &[&to.as_str(), updated_at, id, &from.as_str()],
                )
                .await?
            }
            Change::InsertDevice(d) => {
                Self::exec(
                    tx,
                    SQL_INSERT_DEVICE,
                    &[
                        &d.id,
                        &d.account_id,
                        &d.jkt,
                        &d.jwk,
                        &d.status.as_str(),
                        &d.failed_logins,
                        &d.locked_until,
                        &d.expires_at,
                        &d.created_at,
                        &d.revoked_at,
                    ],
                )
                .await?
            }
            Change::RevokeDevice { id, at } => Self::exec(tx, SQL_REVOKE_DEVICE, &[at, id]).await?,
            Change::SetLoginState {
                device_id,
                expected_failures,
                failures,
                locked_until,
            } => {
                Self::exec(
                    tx,
                    SQL_SET_LOGIN_STATE,
                    &[failures, locked_until, device_id, expected_failures],
                )
                .await?
            }
            Change::InsertSession(s) => {
                Self::exec(
                    tx,
                    SQL_INSERT_SESSION,
                    &[
                        &s.token_hash,
                        &s.account_id,
                        &s.device_id,
                        &s.expires_at,
                        &s.created_at,
                    ],
                )
                .await?
            }
            Change::DeleteDeviceSessions { device_id } => {
                Self::exec(tx, SQL_DELETE_DEVICE_SESSIONS, &[device_id]).await?;
                return Ok(());
            }
            Change::InsertService(r) => {
                Self::exec(
                    tx,
                    SQL_INSERT_SERVICE,
                    &[
                        &r.id,
                        &r.name,
                        &r.organization,
                        &r.contact,
                        &r.kind.as_str(),
                        &r.status.as_str(),
                        &r.application,
                        &r.jwks,
                        &r.endpoint,
                        &r.lint,
                        &r.round,
                        &r.created_at,
                        &r.updated_at,
                        &r.client_secret_hash,
                    ],
                )
                .await?
            }
            Change::InsertPurpose(r) => {
                Self::exec(
                    tx,
                    SQL_INSERT_PURPOSE,
                    &[
                        &r.consumer_id,
                        &r.purpose_id,
                        &r.provider_id,
                        &r.legal_basis.as_str(),
                        &items_json(&r.items),
                        &r.definition,
                        &r.terms_sha256,
                    ],
                )
                .await?
            }
            Change::InsertVote(r) => {
                Self::exec(
                    tx,
                    SQL_INSERT_VOTE,
                    &[
                        &r.member_id,
                        &r.nonce,
                        &r.service_id,
                        &r.round,
                        &r.decision,
                        &r.comment,
                        &r.issued_at,
                        &r.jws,
                        &r.created_at,
                    ],
                )
                .await?
            }
            Change::SetServiceStatus {
                id,
                from,
                to,
                round,
                updated_at,
            } => {
                Self::exec(
                    tx,
                    SQL_SET_SERVICE_STATUS,
                    &[&to.as_str(), updated_at, id, &from.as_str(), round],
                )
                .await?
            }
            Change::InsertConsent(r) => {
                Self::exec(
                    tx,
                    SQL_INSERT_CONSENT,
                    &[
                        &r.id,
                        &r.account_id,
                        &r.consumer_id,
                        &r.provider_id,
                        &r.purpose_id,
                        &r.generation,
                        &items_json(&r.items),
                        &r.expires_at,
                        &r.terms_sha256,
                        &r.status.as_str(),
                        &r.jws,
                        &r.device_id,
                        &r.version,
                        &r.created_at,
                        &r.updated_at,
                    ],
                )
                .await?
            }
            Change::SetConsentStatus {
                id,
                from,
                to,
                updated_at,
            } => {
                Self::exec(
                    tx,
                    SQL_SET_CONSENT_STATUS,
                    &[&to.as_str(), updated_at, id, &from.as_str()],
                )
                .await?
            }
            Change::SetConsentExpiry {
                id,
                expected_version,
                expires_at,
                updated_at,
            } => {
                Self::exec(
                    tx,
                    SQL_SET_CONSENT_EXPIRY,
                    &[expires_at, updated_at, id, expected_version],
                )
                .await?
            }
            Change::InsertConsentChange {
                consent_id,
                action,
                expires_at,
                jws,
                created_at,
            } => {
                Self::exec(
                    tx,
                    SQL_INSERT_CONSENT_CHANGE,
                    &[consent_id, action, expires_at, jws, created_at],
                )
                .await?
            }
            Change::InsertConsentEvent(r) => {
                Self::exec(
                    tx,
                    SQL_INSERT_CONSENT_EVENT,
                    &[
                        &r.consent_id,
                        &r.account_id,
                        &r.consumer_id,
                        &r.provider_id,
                        &r.purpose_id,
                        &r.status,
                        &items_json(&r.items),
                        &r.expires_at,
                        &r.created_at,
                    ],
                )
                .await?
            }
            Change::UseResidentNonce {
                account_id,
                nonce,
                expires_at,
            } => Self::exec(tx, SQL_USE_RESIDENT_NONCE, &[account_id, nonce, expires_at]).await?,
            Change::LinkSubject {
                sector,
                subject,
                account_id,
                created_at,
            } => {
                Self::exec(
                    tx,
                    SQL_LINK_SUBJECT,
                    &[sector, subject, account_id, created_at],
                )
                .await?;
                return Ok(());
            }
            Change::UseJti { key, expires_at } => {
                Self::exec(tx, SQL_PUT_NONCE, &[key, &"jti", expires_at]).await?
            }
            Change::InsertTicket(r) => {
                Self::exec(
                    tx,
                    SQL_INSERT_TICKET,
                    &[
                        &r.id,
                        &r.consumer_id,
                        &r.provider_id,
                        &r.account_id,
                        &r.purpose_id,
                        &items_json(&r.items),
                        &r.basis,
                        &r.requester,
                        &r.reason,
                        &r.issued_at,
                        &r.expires_at,
                        &r.consumer_receipt,
                        &r.provider_receipt,
                        &r.state,
                        &r.updated_at,
                    ],
                )
                .await?
            }
            Change::SetReceipt {
                ticket_id,
                side,
                payload_sha256,
                updated_at,
            } => {
                let sql = match side {
                    ReceiptSide::Consumer => SQL_SET_CONSUMER_RECEIPT,
                    ReceiptSide::Provider => SQL_SET_PROVIDER_RECEIPT,
                };
                Self::exec(tx, sql, &[payload_sha256, updated_at, ticket_id]).await?
            }
            Change::CloseTicket {
                ticket_id,
                state,
                updated_at,
            } => Self::exec(tx, SQL_CLOSE_TICKET, &[state, updated_at, ticket_id]).await?,
            Change::InsertAlert(r) => {
                Self::exec(
                    tx,
                    SQL_INSERT_ALERT,
                    &[&r.kind, &r.service_id, &r.detail, &r.created_at],
                )
                .await?
            }
            Change::InsertAuthzRequest(r) => {
                Self::exec(
                    tx,
                    SQL_INSERT_AUTHZ_REQUEST,
                    &[
                        &r.id,
                        &r.client_id,
                        &r.params,
                        &r.pushed,
                        &r.login_nonce,
                        &r.expires_at,
                        &r.created_at,
                    ],
                )
                .await?
            }
            Change::SetAuthzLoginNonce { id, login_nonce } => {
                Self::exec(tx, SQL_SET_AUTHZ_LOGIN_NONCE, &[login_nonce, id]).await?
            }
            Change::DeleteAuthzRequest { id } => {
                Self::exec(tx, SQL_DELETE_AUTHZ_REQUEST, &[id]).await?;
                return Ok(());
            }
            Change::InsertGrant(r) => {
                Self::exec(
                    tx,
                    SQL_INSERT_GRANT,
                    &[
                        &r.id,
                        &r.client_id,
                        &r.account_id,
                        &r.device_id,
                        &r.scope,
                        &items_json(&r.items),
                        &r.consent_id,
                        &r.auth_time,
                        &r.created_at,
                        &r.revoked_at,
                        &r.revoked_reason,
                    ],
                )
                .await?
            }
            Change::RevokeGrant { id, reason, at } => {
                Self::exec(tx, SQL_REVOKE_GRANT, &[at, reason, id]).await?
            }
            Change::InsertCode(r) => {
                Self::exec(
                    tx,
                    SQL_INSERT_CODE,
                    &[
                        &r.code_hash,
                        &r.grant_id,
                        &r.redirect_uri,
                        &r.code_challenge,
                        &r.nonce,
                        &r.dpop_jkt,
                        &r.expires_at,
                        &r.used_at,
                        &r.created_at,
                    ],
                )
                .await?
            }
            Change::UseCode { code_hash, at } => {
                Self::exec(tx, SQL_USE_CODE, &[at, code_hash]).await?
            }
            Change::InsertOauthToken(r) => {
                Self::exec(
                    tx,
                    SQL_INSERT_OAUTH_TOKEN,
                    &[
                        &r.token_hash,
                        &r.grant_id,
                        &r.kind.as_str(),
                        &r.scope,
                        &r.dpop_jkt,
                        &r.expires_at,
                        &r.used_at,
                        &r.created_at,
                    ],
                )
                .await?
            }
            Change::UseRefreshToken { token_hash, at } => {
                Self::exec(tx, SQL_USE_REFRESH_TOKEN, &[at, token_hash]).await?
            }
            Change::SetClientSecret {
                service_id,
                secret_hash,
                updated_at,
            } => {
                Self::exec(
                    tx,
                    SQL_SET_CLIENT_SECRET,
                    &[secret_hash, updated_at, service_id],
                )
                .await?
            }
            Change::UpdateServiceRegistration {
                id,
                application,
                jwks,
                endpoint,
                updated_at,
            } => {
                Self::exec(
                    tx,
                    SQL_UPDATE_SERVICE_REGISTRATION,
                    &[application, jwks, endpoint, updated_at, id],
                )
                .await?
            }
            Change::DeleteSession { token_hash } => {
                Self::exec(tx, SQL_DELETE_SESSION, &[token_hash]).await?;
                return Ok(());
            }
        };
        if affected == 1 {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!(
                "precondition of {} no longer holds",
                change_name(change)
            )))
        }
    }

    /// Applies a commit's changes in order; with `skip_bulk`, leaves out those the caller
    /// writes in bulk afterwards.
    async fn apply_changes(tx: &Transaction<'_>, commit: &Commit, skip_bulk: bool) -> Result<()> {
        for change in &commit.changes {
            if !(skip_bulk && is_bulk(change)) {
                Self::apply(tx, change).await?;
            }
        }
        Ok(())
    }

    /// Writes a batch's bulk changes (see `common::is_bulk`), one `UNNEST` INSERT per table.
    async fn bulk_apply(tx: &Transaction<'_>, bulk: &BulkColumns) -> Result<()> {
        if !bulk.jti_key.is_empty() {
            Self::exec(
                tx,
                "INSERT INTO nonces (nonce, purpose, expires_at) SELECT k, 'jti', e FROM UNNEST($1::text[], $2::int8[]) AS u (k, e)",
                &[&bulk.jti_key, &bulk.jti_expires_at],
            )
            .await?;
        }
        if !bulk.link_sector.is_empty() {
            Self::exec(
                tx,
                "INSERT INTO subjects (sector, subject, account_id, created_at) SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[]) ON CONFLICT DO NOTHING",
                &[&bulk.link_sector, &bulk.link_subject, &bulk.link_account_id, &bulk.link_created_at],
            )
            .await?;
        }
        let t = &bulk.tickets;
        if t.len() > 0 {
            Self::exec(
                tx,
                &format!("{SQL_INSERT_TICKETS_HEAD} SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::int8[], $11::int8[], $12::text[], $13::text[], $14::text[], $15::int8[])"),
                &[
                    &t.id,
                    &t.consumer_id,
                    &t.provider_id,
                    &t.account_id,
                    &t.purpose_id,
                    &t.items,
                    &t.basis,
                    &t.requester,
                    &t.reason,
                    &t.issued_at,
                    &t.expires_at,
                    &t.consumer_receipt,
                    &t.provider_receipt,
                    &t.state,
                    &t.updated_at,
                ],
            )
            .await?;
        }
        Ok(())
    }

    async fn insert_leaves<'c>(
        tx: &Transaction<'_>,
        commits: impl Iterator<Item = &'c Commit>,
        first: u64,
    ) -> Result<()> {
        let (leaves, subjects) = LeafColumns::of(commits, first)?;
        if !leaves.idx.is_empty() {
            Self::exec(
                tx,
                "INSERT INTO ledger_leaves (idx, leaf_hash, leaf_input, created_at) SELECT * FROM UNNEST($1::int8[], $2::bytea[], $3::bytea[], $4::int8[])",
                &[&leaves.idx, &leaves.hash, &leaves.input, &leaves.created_at],
            )
            .await?;
        }
        if !subjects.idx.is_empty() {
            Self::exec(
                tx,
                "INSERT INTO ledger_subjects (account_id, idx) SELECT * FROM UNNEST($1::text[], $2::int8[]) ON CONFLICT DO NOTHING",
                &[&subjects.account_id, &subjects.idx],
            )
            .await?;
        }
        Ok(())
    }

    async fn head(tx: &Transaction<'_>) -> Result<u64> {
        let statement = tx
            .prepare_cached("SELECT tree_size FROM ledger_head WHERE id = 1 FOR UPDATE")
            .await
            .map_err(map_err)?;
        let row = tx.query_one(&statement, &[]).await.map_err(map_err)?;
        to_u64(get(&row, "tree_size")?)
    }

    async fn finish(tx: Transaction<'_>, size_before: u64, size_after: u64) -> Result<()> {
        if size_after != size_before {
            Self::exec(&tx, SQL_SET_HEAD, &[&to_i64(size_after)?]).await?;
        }
        tx.commit().await.map_err(map_err)
    }

    /// The batch with each commit in its own savepoint, so a refused commit undoes only
    /// itself.
    async fn commit_batch_isolated(&self, commits: &[Commit]) -> Result<BatchOutcome> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let mut tx = client.transaction().await.map_err(map_err)?;
        let size_before = Self::head(&tx).await?;
        let mut next = size_before;
        let mut results = Vec::with_capacity(commits.len());
        for commit in commits {
            let sp = tx.savepoint("tsunagu_commit").await.map_err(map_err)?;
            let applied = match Self::apply_changes(&sp, commit, false).await {
                Ok(()) => Self::insert_leaves(&sp, std::iter::once(commit), next).await,
                Err(e) => Err(e),
            };
            match applied {
                Ok(()) => {
                    sp.commit().await.map_err(map_err)?;
                    let count = commit.leaves.len() as u64;
                    results.push(Ok(Committed {
                        first_leaf: next,
                        leaf_count: count,
                    }));
                    next += count;
                }
                Err(e @ StoreError::Conflict(_)) => {
                    sp.rollback().await.map_err(map_err)?;
                    results.push(Err(e));
                }
                Err(e) => return Err(e),
            }
        }
        Self::finish(tx, size_before, next).await?;
        Ok(BatchOutcome {
            size_before,
            size_after: next,
            results,
        })
    }
}

#[async_trait]
impl IdentityStore for PgStore {
    async fn account(&self, id: &str) -> Result<Option<AccountRow>> {
        self.query_opt(SQL_ACCOUNT_BY_ID, &[&id])
            .await?
            .as_ref()
            .map(Self::account_row)
            .transpose()
    }

    async fn account_by_card(&self, binding: &str) -> Result<Option<AccountRow>> {
        self.query_opt(SQL_ACCOUNT_BY_CARD, &[&binding])
            .await?
            .as_ref()
            .map(Self::account_row)
            .transpose()
    }

    async fn accounts_with_card(&self, issuer: &[u8], serial: &[u8]) -> Result<Vec<AccountRow>> {
        self.query(SQL_ACCOUNTS_WITH_CARD, &[&serial, &issuer])
            .await?
            .iter()
            .map(Self::account_row)
            .collect()
    }

    async fn device(&self, id: &str) -> Result<Option<DeviceRow>> {
        self.query_opt(SQL_DEVICE_BY_ID, &[&id])
            .await?
            .as_ref()
            .map(Self::device_row)
            .transpose()
    }

    async fn device_by_jkt(&self, jkt: &str) -> Result<Option<DeviceRow>> {
        self.query_opt(SQL_DEVICE_BY_JKT, &[&jkt])
            .await?
            .as_ref()
            .map(Self::device_row)
            .transpose()
    }

    async fn devices_of(&self, account_id: &str) -> Result<Vec<DeviceRow>> {
        self.query(SQL_DEVICES_OF, &[&account_id])
            .await?
            .iter()
            .map(Self::device_row)
            .collect()
    }

    async fn count_accounts(&self) -> Result<u64> {
        let row = self
            .query_opt("SELECT COUNT(*) AS n FROM accounts", &[])
            .await?
            .ok_or_else(|| corrupt("count"))?;
        to_u64(get(&row, "n")?)
    }
}

#[async_trait]
impl NonceStore for PgStore {
    async fn put_nonce(&self, nonce: &str, purpose: &str, expires_at: i64) -> Result<()> {
        self.execute(SQL_PUT_NONCE, &[&nonce, &purpose, &expires_at])
            .await?;
        Ok(())
    }

    async fn take_nonce(&self, nonce: &str, purpose: &str, now: i64) -> Result<bool> {
        // Deleting is the consumption: of concurrent takers, one deletes the row.
        let row = self.query_opt(SQL_TAKE_NONCE, &[&nonce, &purpose]).await?;
        match row {
            Some(row) => Ok(get::<i64>(&row, "expires_at")? > now),
            None => Ok(false),
        }
    }

    async fn purge_nonces(&self, now: i64) -> Result<u64> {
        self.execute(SQL_PURGE_NONCES, &[&now]).await
    }
}

#[async_trait]
impl SessionStore for PgStore {
    async fn session(&self, token_hash: &str) -> Result<Option<SessionRow>> {
        self.query_opt(SQL_SESSION, &[&token_hash])
            .await?
            .map(|r| {
                Ok(SessionRow {
                    token_hash: get(&r, "token_hash")?,
                    account_id: get(&r, "account_id")?,
                    device_id: get(&r, "device_id")?,
                    expires_at: get(&r, "expires_at")?,
                    created_at: get(&r, "created_at")?,
                })
            })
            .transpose()
    }

    async fn purge_sessions(&self, now: i64) -> Result<u64> {
        self.execute(SQL_PURGE_SESSIONS, &[&now]).await
    }
}

#[async_trait]
impl LedgerStore for PgStore {
    async fn ledger_size(&self) -> Result<u64> {
        let row = self
            .query_opt(SQL_LEDGER_SIZE, &[])
            .await?
            .ok_or_else(|| corrupt("ledger head"))?;
        to_u64(get(&row, "tree_size")?)
    }

    async fn leaf_hashes(&self, start: u64, end: u64) -> Result<Vec<[u8; 32]>> {
        let rows = self
            .query(SQL_LEAF_HASHES, &[&to_i64(start)?, &to_i64(end)?])
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            if to_u64(get(row, "idx")?)? != start + i as u64 {
                return Err(corrupt("ledger leaves are not dense"));
            }
            out.push(hash32(get(row, "leaf_hash")?)?);
        }
        Ok(out)
    }

    async fn leaves(&self, start: u64, end: u64) -> Result<Vec<LeafRow>> {
        self.query(SQL_LEAVES, &[&to_i64(start)?, &to_i64(end)?])
            .await?
            .iter()
            .map(Self::leaf_row)
            .collect()
    }

    async fn subject_leaves(
        &self,
        account_id: &str,
        before: Option<u64>,
        limit: u32,
    ) -> Result<Vec<LeafRow>> {
        let before = match before {
            Some(b) => to_i64(b)?,
            None => i64::MAX,
        };
        self.query(
            SQL_SUBJECT_LEAVES,
            &[&account_id, &before, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(Self::leaf_row)
        .collect()
    }

    async fn put_sth(&self, sth: &SthRow) -> Result<()> {
        self.execute(
            SQL_PUT_STH,
            &[
                &to_i64(sth.tree_size)?,
                &sth.root_hash,
                &sth.timestamp,
                &sth.key_id,
                &sth.signature,
            ],
        )
        .await?;
        Ok(())
    }

    async fn latest_sth(&self) -> Result<Option<SthRow>> {
        self.query_opt(SQL_LATEST_STH, &[])
            .await?
            .map(|r| {
                Ok(SthRow {
                    tree_size: to_u64(get(&r, "tree_size")?)?,
                    root_hash: get(&r, "root_hash")?,
                    timestamp: get(&r, "timestamp")?,
                    key_id: get(&r, "key_id")?,
                    signature: get(&r, "signature")?,
                })
            })
            .transpose()
    }

    async fn expire_leaf_inputs(&self, before: i64) -> Result<u64> {
        self.execute(SQL_EXPIRE_LEAF_INPUTS, &[&before]).await
    }
}

#[async_trait]
impl KeyStore for PgStore {
    async fn keys(&self, purpose: &str) -> Result<Vec<KeyRow>> {
        self.query(SQL_KEYS, &[&purpose])
            .await?
            .iter()
            .map(|r| {
                Ok(KeyRow {
                    name: get(r, "name")?,
                    purpose: get(r, "purpose")?,
                    kid: get(r, "kid")?,
                    alg: get(r, "alg")?,
                    secret: get(r, "secret")?,
                    active: get(r, "active")?,
                    created_at: get(r, "created_at")?,
                })
            })
            .collect()
    }

    async fn insert_key_if_absent(&self, key: &KeyRow) -> Result<bool> {
        Ok(self
            .execute(
                SQL_INSERT_KEY,
                &[
                    &key.name,
                    &key.purpose,
                    &key.kid,
                    &key.alg,
                    &key.secret,
                    &key.active,
                    &key.created_at,
                ],
            )
            .await?
            == 1)
    }
}

#[async_trait]
impl ServiceStore for PgStore {
    async fn service(&self, id: &str) -> Result<Option<ServiceRow>> {
        self.query_opt(SQL_SERVICE_BY_ID, &[&id])
            .await?
            .as_ref()
            .map(Self::service_row)
            .transpose()
    }

    async fn services(&self, status: Option<ServiceStatus>) -> Result<Vec<ServiceRow>> {
        let rows = match status {
            Some(status) => {
                self.query(SQL_SERVICES_BY_STATUS, &[&status.as_str()])
                    .await?
            }
            None => self.query(SQL_SERVICES_ALL, &[]).await?,
        };
        rows.iter().map(Self::service_row).collect()
    }

    async fn purpose(&self, consumer_id: &str, purpose_id: &str) -> Result<Option<PurposeRow>> {
        self.query_opt(SQL_PURPOSE, &[&consumer_id, &purpose_id])
            .await?
            .as_ref()
            .map(Self::purpose_row)
            .transpose()
    }

    async fn all_purposes(&self) -> Result<Vec<PurposeRow>> {
        self.query(SQL_ALL_PURPOSES, &[])
            .await?
            .iter()
            .map(Self::purpose_row)
            .collect()
    }

    async fn purposes_of(&self, consumer_id: &str) -> Result<Vec<PurposeRow>> {
        self.query(SQL_PURPOSES_OF, &[&consumer_id])
            .await?
            .iter()
            .map(Self::purpose_row)
            .collect()
    }

    async fn votes(&self, service_id: &str, round: i64) -> Result<Vec<VoteRow>> {
        self.query(SQL_VOTES, &[&service_id, &round])
            .await?
            .iter()
            .map(|r| {
                Ok(VoteRow {
                    member_id: get(r, "member_id")?,
                    nonce: get(r, "nonce")?,
                    service_id: get(r, "service_id")?,
                    round: get(r, "round")?,
                    decision: get(r, "decision")?,
                    comment: get(r, "comment")?,
                    issued_at: get(r, "issued_at")?,
                    jws: get(r, "jws")?,
                    created_at: get(r, "created_at")?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl ConsentStore for PgStore {
    async fn consent(&self, id: &str) -> Result<Option<ConsentRow>> {
        self.query_opt(SQL_CONSENT_BY_ID, &[&id])
            .await?
            .as_ref()
            .map(|r| Self::consent_row(r, ""))
            .transpose()
    }

    async fn consents_of(&self, account_id: &str) -> Result<Vec<ConsentRow>> {
        self.query(SQL_CONSENTS_OF, &[&account_id])
            .await?
            .iter()
            .map(|r| Self::consent_row(r, ""))
            .collect()
    }

    async fn latest_consent(
        &self,
        account_id: &str,
        consumer_id: &str,
        purpose_id: &str,
    ) -> Result<Option<ConsentRow>> {
        self.query_opt(
            SQL_LATEST_CONSENT,
            &[&account_id, &consumer_id, &purpose_id],
        )
        .await?
        .as_ref()
        .map(|r| Self::consent_row(r, ""))
        .transpose()
    }

    async fn consent_events(
        &self,
        service_id: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<ConsentEventRow>> {
        self.query(
            SQL_CONSENT_EVENTS,
            &[&service_id, &since, &i64::from(limit)],
        )
        .await?
        .iter()
        .map(Self::consent_event_row)
        .collect()
    }

    async fn consent_history(&self, consent_id: &str) -> Result<Vec<ConsentEventRow>> {
        self.query(SQL_CONSENT_HISTORY, &[&consent_id])
            .await?
            .iter()
            .map(Self::consent_event_row)
            .collect()
    }

    async fn due_expirations(&self, now: i64, limit: u32) -> Result<Vec<ConsentRow>> {
        self.query(SQL_DUE_EXPIRATIONS, &[&now, &i64::from(limit)])
            .await?
            .iter()
            .map(|r| Self::consent_row(r, ""))
            .collect()
    }

    async fn purge_resident_nonces(&self, now: i64) -> Result<u64> {
        self.execute(SQL_PURGE_RESIDENT_NONCES, &[&now]).await
    }
}

#[async_trait]
impl ExchangeStore for PgStore {
    async fn account_for_subject(&self, sector: &str, subject: &str) -> Result<Option<String>> {
        self.query_opt(SQL_ACCOUNT_FOR_SUBJECT, &[&sector, &subject])
            .await?
            .map(|r| get(&r, "account_id"))
            .transpose()
    }

    async fn ticket_context(
        &self,
        consumer_id: &str,
        provider_id: &str,
        purpose_id: &str,
        subject: &str,
    ) -> Result<Option<TicketContext>> {
        let Some(row) = self
            .query_opt(
                SQL_TICKET_CONTEXT,
                &[&consumer_id, &purpose_id, &subject, &provider_id],
            )
            .await?
        else {
            return Ok(None);
        };
        let consumer: String = get(&row, "consumer_status")?;
        let provider: Option<String> = get(&row, "provider_status")?;
        let account_id: Option<String> = get(&row, "account_id")?;
        let consent_id: Option<String> = get(&row, "c_id")?;
        let resident = match account_id {
            Some(account_id) => {
                let level: String = get(&row, "account_level")?;
                let status: String = get(&row, "account_status")?;
                Some(ResidentRow {
                    account_id,
                    level: Level::parse(&level).ok_or_else(|| corrupt("account level"))?,
                    status: AccountStatus::parse(&status)
                        .ok_or_else(|| corrupt("account status"))?,
                })
            }
            None => None,
        };
        Ok(Some(TicketContext {
            consumer_status: ServiceStatus::parse(&consumer)
                .ok_or_else(|| corrupt("service status"))?,
            provider_status: provider
                .map(|p| ServiceStatus::parse(&p).ok_or_else(|| corrupt("service status")))
                .transpose()?,
            resident,
            consent: match consent_id {
                Some(_) => Some(Self::consent_row(&row, "c_")?),
                None => None,
            },
        }))
    }

    async fn ticket(&self, id: &str) -> Result<Option<TicketRow>> {
        self.query_opt(SQL_TICKET_BY_ID, &[&id])
            .await?
            .as_ref()
            .map(Self::ticket_row)
            .transpose()
    }

    async fn overdue_tickets(&self, before: i64, limit: u32) -> Result<Vec<TicketRow>> {
        self.query(SQL_OVERDUE_TICKETS, &[&before, &i64::from(limit)])
            .await?
            .iter()
            .map(Self::ticket_row)
            .collect()
    }

    async fn tickets_of(&self, account_id: &str, limit: u32) -> Result<Vec<TicketRow>> {
        self.query(SQL_TICKETS_OF, &[&account_id, &i64::from(limit)])
            .await?
            .iter()
            .map(Self::ticket_row)
            .collect()
    }

    async fn alerts(&self, since: i64, limit: u32) -> Result<Vec<AlertRow>> {
        self.query(SQL_ALERTS, &[&since, &i64::from(limit)])
            .await?
            .iter()
            .map(|r| {
                Ok(AlertRow {
                    seq: get(r, "seq")?,
                    kind: get(r, "kind")?,
                    service_id: get(r, "service_id")?,
                    detail: get(r, "detail")?,
                    created_at: get(r, "created_at")?,
                })
            })
            .collect()
    }

    async fn ticket_counts(&self, service_id: &str) -> Result<Vec<(String, String, u64)>> {
        self.query(SQL_TICKET_COUNTS, &[&service_id])
            .await?
            .iter()
            .map(|r| Ok((get(r, "role")?, get(r, "state")?, to_u64(get(r, "n")?)?)))
            .collect()
    }
}

#[async_trait]
impl OidcStore for PgStore {
    async fn authz_request(&self, id: &str) -> Result<Option<AuthzRequestRow>> {
        self.query_opt(SQL_AUTHZ_REQUEST_BY_ID, &[&id])
            .await?
            .as_ref()
            .map(Self::authz_request_row)
            .transpose()
    }

    async fn authz_request_by_login_nonce(&self, nonce: &str) -> Result<Option<AuthzRequestRow>> {
        self.query_opt(SQL_AUTHZ_REQUEST_BY_LOGIN_NONCE, &[&nonce])
            .await?
            .as_ref()
            .map(Self::authz_request_row)
            .transpose()
    }

    async fn grant(&self, id: &str) -> Result<Option<GrantRow>> {
        self.query_opt(SQL_GRANT_BY_ID, &[&id])
            .await?
            .as_ref()
            .map(|r| Self::grant_row(r, ""))
            .transpose()
    }

    async fn code(&self, code_hash: &str) -> Result<Option<(CodeRow, GrantRow)>> {
        self.query_opt(SQL_CODE, &[&code_hash])
            .await?
            .as_ref()
            .map(|r| Ok((Self::code_row(r)?, Self::grant_row(r, "g_")?)))
            .transpose()
    }

    async fn oauth_token(&self, token_hash: &str) -> Result<Option<(OauthTokenRow, GrantRow)>> {
        self.query_opt(SQL_OAUTH_TOKEN, &[&token_hash])
            .await?
            .as_ref()
            .map(|r| Ok((Self::oauth_token_row(r)?, Self::grant_row(r, "g_")?)))
            .transpose()
    }

    async fn grants_of(&self, account_id: &str, limit: u32) -> Result<Vec<GrantRow>> {
        self.query(SQL_GRANTS_OF, &[&account_id, &i64::from(limit)])
            .await?
            .iter()
            .map(|r| Self::grant_row(r, ""))
            .collect()
    }

    async fn count_active_grants(&self, client_id: &str) -> Result<u64> {
        let row = self
            .query_opt(SQL_COUNT_ACTIVE_GRANTS, &[&client_id])
            .await?
            .ok_or_else(|| corrupt("count"))?;
        to_u64(get(&row, "n")?)
    }

    async fn purge_oidc(&self, now: i64) -> Result<u64> {
        let retained = now.saturating_sub(OIDC_RETENTION_SECS);
        Ok(self.execute(SQL_PURGE_AUTHZ_REQUESTS, &[&now]).await?
            + self.execute(SQL_PURGE_CODES, &[&retained]).await?
            + self.execute(SQL_PURGE_OAUTH_TOKENS, &[&retained]).await?)
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn commit_batch(&self, commits: &[Commit]) -> Result<BatchOutcome> {
        // Optimistically, every commit applies: no savepoints, leaves in bulk.
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(map_err)?;
        let size_before = Self::head(&tx).await?;
        let mut conflict = None;
        for commit in commits {
            match Self::apply_changes(&tx, commit, true).await {
                Ok(()) => {}
                Err(e @ StoreError::Conflict(_)) => {
                    conflict = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if conflict.is_none() {
            match Self::bulk_apply(&tx, &BulkColumns::of(commits.iter())).await {
                Ok(()) => {}
                Err(e @ StoreError::Conflict(_)) => conflict = Some(e),
                Err(e) => return Err(e),
            }
        }
        match conflict {
            None => {
                Self::insert_leaves(&tx, commits.iter(), size_before).await?;
                let (results, next) = placements(commits, size_before);
                Self::finish(tx, size_before, next).await?;
                Ok(BatchOutcome {
                    size_before,
                    size_after: next,
                    results,
                })
            }
            Some(e) if commits.len() == 1 => {
                tx.rollback().await.map_err(map_err)?;
                Ok(BatchOutcome {
                    size_before,
                    size_after: size_before,
                    results: vec![Err(e)],
                })
            }
            Some(_) => {
                tx.rollback().await.map_err(map_err)?;
                drop(client);
                self.commit_batch_isolated(commits).await
            }
        }
    }

    async fn ping(&self) -> Result<()> {
        self.execute("SELECT 1", &[]).await.map(|_| ())
    }
}
