//! The PostgreSQL backend (the `postgres` client on the store's own threads). Any number of
//! server replicas share one database: the ledger head row, locked `FOR UPDATE` at the start
//! of a batch, orders leaf indices across replicas; nonces, sessions and rate counters are
//! rows. It keeps only what is PostgreSQL's own: connecting (TLS, a schema per test),
//! binding typed parameters, reading typed columns, and `UNNEST` bulk inserts.
//!
//! tokio-postgres (under `postgres`) sets `TCP_NODELAY`, so statements carrying a thousand
//! leaves do not wait for delayed ACKs; see docs/adr/0004-postgres-driver.md.

use crate::pool::{Connector, Database, WorkerConn};
use crate::sql::{BulkTable, ColumnType, Conn, Dialect, Param, Row, Value};
use crate::{Result, StoreError};
use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::error::SqlState;

/// Connections (and threads) per PostgreSQL store.
const POOL_SIZE: usize = 16;

pub(crate) fn map_err(e: postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION
            || *code == SqlState::FOREIGN_KEY_VIOLATION
            || *code == SqlState::CHECK_VIOLATION
        {
            return StoreError::Conflict(db.message().to_owned());
        }
        if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
        {
            return StoreError::Unavailable(db.message().to_owned());
        }
        return StoreError::Database(db.message().to_owned());
    }
    StoreError::Unavailable(e.to_string())
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
        match self {
            Param::Null => Ok(IsNull::Yes),
            Param::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                _ => Err(format!("an integer cannot be bound to a {ty} parameter").into()),
            },
            Param::Text(s) if <&str as ToSql>::accepts(ty) => s.as_ref().to_sql(ty, out),
            Param::Bytes(b) if <&[u8] as ToSql>::accepts(ty) => b.as_ref().to_sql(ty, out),
            Param::Bool(b) if *ty == Type::BOOL => b.to_sql(ty, out),
            other => Err(format!("{other:?} cannot be bound to a {ty} parameter").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A connection and its prepared statements.
pub(crate) struct PgConn {
    client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
    in_transaction: bool,
}

fn column(row: &postgres::Row, i: usize) -> Result<Value> {
    let ty = row.columns()[i].type_();
    let bad = |e: postgres::Error| StoreError::Corrupt(format!("column {}: {e}", i + 1));
    Ok(match *ty {
        Type::INT8 => row
            .try_get::<_, Option<i64>>(i)
            .map_err(bad)?
            .map(Value::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)
            .map_err(bad)?
            .map(|v| Value::Int(v.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)
            .map_err(bad)?
            .map(|v| Value::Int(v.into())),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => row
            .try_get::<_, Option<String>>(i)
            .map_err(bad)?
            .map(Value::Text),
        Type::BYTEA => row
            .try_get::<_, Option<Vec<u8>>>(i)
            .map_err(bad)?
            .map(Value::Bytes),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)
            .map_err(bad)?
            .map(Value::Bool),
        _ => {
            return Err(StoreError::Corrupt(format!(
                "column {}: type {ty} is not one the store reads",
                i + 1
            )));
        }
    }
    .unwrap_or(Value::Null))
}

impl PgConn {
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).map_err(map_err)?;
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

fn refs<'a>(params: &'a [Param<'_>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

impl Conn for PgConn {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let statement = self.statement(sql)?;
        self.client
            .execute(&statement, &refs(params))
            .map_err(map_err)
    }

    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        let statement = self.statement(sql)?;
        let rows = self
            .client
            .query(&statement, &refs(params))
            .map_err(map_err)?;
        rows.iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| column(row, i))
                    .collect::<Result<Vec<_>>>()
                    .map(Row)
            })
            .collect()
    }

    fn query_each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        each: &mut dyn FnMut(Row) -> Result<()>,
    ) -> Result<()> {
        use postgres::fallible_iterator::FallibleIterator;
        let statement = self.statement(sql)?;
        let mut rows = self
            .client
            .query_raw(&statement, refs(params))
            .map_err(map_err)?;
        while let Some(row) = rows.next().map_err(map_err)? {
            let values = (0..row.len())
                .map(|i| column(&row, i))
                .collect::<Result<Vec<_>>>()?;
            each(Row(values))?;
        }
        Ok(())
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        self.client.batch_execute(sql).map_err(map_err)?;
        let word = sql.trim_start().to_ascii_uppercase();
        if word.starts_with("BEGIN") {
            self.in_transaction = true;
        } else if word.starts_with("COMMIT")
            || (word.starts_with("ROLLBACK") && !word.starts_with("ROLLBACK TO"))
        {
            self.in_transaction = false;
        }
        Ok(())
    }

    fn rollback(&mut self) -> Result<()> {
        self.in_transaction = false;
        self.client.batch_execute("ROLLBACK").map_err(map_err)
    }

    /// `INSERT INTO t (…) SELECT * FROM UNNEST($1::int8[], $2::text[], …)`: one statement
    /// (one round trip) for any number of rows.
    fn bulk_insert(&mut self, table: &BulkTable, rows: &[Vec<Param<'_>>]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut names = Vec::with_capacity(table.columns.len());
        let mut arrays = Vec::with_capacity(table.columns.len());
        for (n, (name, ty)) in table.columns.iter().enumerate() {
            names.push(*name);
            let cast = match ty {
                ColumnType::Int => "int8",
                ColumnType::Text => "text",
                ColumnType::Bytes => "bytea",
            };
            arrays.push(format!("${}::{cast}[]", n + 1));
        }
        let sql = format!(
            "INSERT INTO {} ({}) SELECT * FROM UNNEST({}){}",
            table.table,
            names.join(", "),
            arrays.join(", "),
            table.tail
        );
        let mut columns: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(table.columns.len());
        for (n, (name, ty)) in table.columns.iter().enumerate() {
            let cell = |row: &[Param<'_>]| -> Result<Param<'static>> {
                match row.get(n) {
                    Some(Param::Null) => Ok(Param::Null),
                    Some(Param::Int(i)) => Ok(Param::Int(*i)),
                    Some(Param::Bool(b)) => Ok(Param::Bool(*b)),
                    Some(Param::Text(t)) => Ok(Param::Text(t.to_string().into())),
                    Some(Param::Bytes(b)) => Ok(Param::Bytes(b.to_vec().into())),
                    None => Err(StoreError::Database(format!(
                        "bulk row without column {name}"
                    ))),
                }
            };
            let wrong = || StoreError::Database(format!("bulk column {name}: wrong type"));
            match ty {
                ColumnType::Int => {
                    let mut v: Vec<Option<i64>> = Vec::with_capacity(rows.len());
                    for row in rows {
                        v.push(match cell(row)? {
                            Param::Null => None,
                            Param::Int(i) => Some(i),
                            _ => return Err(wrong()),
                        });
                    }
                    columns.push(Box::new(v));
                }
                ColumnType::Text => {
                    let mut v: Vec<Option<String>> = Vec::with_capacity(rows.len());
                    for row in rows {
                        v.push(match cell(row)? {
                            Param::Null => None,
                            Param::Text(s) => Some(s.into_owned()),
                            _ => return Err(wrong()),
                        });
                    }
                    columns.push(Box::new(v));
                }
                ColumnType::Bytes => {
                    let mut v: Vec<Option<Vec<u8>>> = Vec::with_capacity(rows.len());
                    for row in rows {
                        v.push(match cell(row)? {
                            Param::Null => None,
                            Param::Bytes(b) => Some(b.into_owned()),
                            _ => return Err(wrong()),
                        });
                    }
                    columns.push(Box::new(v));
                }
            }
        }
        let statement = self.statement(&sql)?;
        let params: Vec<&(dyn ToSql + Sync)> = columns.iter().map(|c| c.as_ref()).collect();
        self.client.execute(&statement, &params).map_err(map_err)?;
        Ok(())
    }
}

impl WorkerConn for PgConn {
    fn is_broken(&self) -> bool {
        self.client.is_closed()
    }

    fn in_transaction(&self) -> bool {
        self.in_transaction
    }
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
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
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

fn parse_url(url: &str) -> Result<tokio_postgres::Config> {
    let mut config = tokio_postgres::Config::from_str(url)
        .map_err(|e| StoreError::Unavailable(format!("database_url: {e}")))?;
    config.connect_timeout(Duration::from_secs(10));
    apply_ssl_policy(&mut config);
    Ok(config)
}

struct PgConnector {
    config: postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
}

impl PgConnector {
    fn open(&self) -> Result<PgConn> {
        let client = self.config.connect(self.tls.clone()).map_err(map_err)?;
        Ok(PgConn {
            client,
            statements: HashMap::new(),
            in_transaction: false,
        })
    }
}

impl Connector for PgConnector {
    fn connect(&self) -> Result<Box<dyn WorkerConn>> {
        Ok(Box::new(self.open()?))
    }
}

/// Runs `f` on a connection of its own, on a thread of its own (the `postgres` client blocks).
async fn once<T: Send + 'static>(
    config: tokio_postgres::Config,
    f: impl FnOnce(&mut PgConn) -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(move || {
        let connector = PgConnector {
            config: config.into(),
            tls: tls()?,
        };
        f(&mut connector.open()?)
    })
    .await
    .map_err(|e| StoreError::Unavailable(format!("connecting: {e}")))?
}

/// Connects to PostgreSQL (TLS when the server offers it or `sslmode=require`). With
/// `schema`, everything lives in that schema (created if missing): the test suite gives
/// every test its own.
pub(crate) async fn open(url: &str, schema: Option<&str>) -> Result<Database> {
    let mut config = parse_url(url)?;
    if let Some(schema) = schema {
        check_schema(schema)?;
        let sql = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
        once(config.clone(), move |c| c.batch(&sql)).await?;
        config.options(format!("-c search_path={schema}"));
    } else {
        // Fail now, naming the database, rather than on the first request.
        once(config.clone(), |c| c.batch("SELECT 1")).await?;
    }
    let connector = PgConnector {
        config: config.into(),
        tls: tls()?,
    };
    Ok(Database::new(
        Dialect::Postgres,
        Arc::new(connector),
        POOL_SIZE,
        false,
    ))
}

/// Creates an empty schema.
pub(crate) async fn create_schema(url: &str, schema: &str) -> Result<()> {
    check_schema(schema)?;
    let config = parse_url(url)?;
    let sql = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
    once(config, move |c| c.batch(&sql)).await
}

/// Drops a schema made by [`open`] (test clean-up).
pub(crate) async fn drop_schema(url: &str, schema: &str) -> Result<()> {
    check_schema(schema)?;
    let config = parse_url(url)?;
    let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    once(config, move |c| c.batch(&sql)).await
}
