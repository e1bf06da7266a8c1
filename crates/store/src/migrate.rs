//! Schema migrations, per capability. Each capability brings its own numbered steps (one SQL
//! text per dialect); the store applies the missing ones at open, in one transaction, under
//! the write lock (SQLite) or an advisory lock (PostgreSQL) so that replicas starting
//! together migrate once. Applied steps are recorded in `tsunagu_schema`.

use crate::sql::{Conn, Dialect, in_transaction};
use crate::{Result, StoreError, params};
use std::collections::{BTreeMap, HashSet};

/// One migration step.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// 1, 2, 3, … within its capability.
    pub version: u32,
    pub name: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// A capability's migrations, in order.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// The capability that owns these tables (a stable name: it is stored).
    pub capability: &'static str,
    pub steps: &'static [Migration],
}

/// Key of the advisory lock that serializes migrations between replicas.
const MIGRATION_LOCK: i64 = 0x0074_7375_6e61_6775;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS tsunagu_schema (capability TEXT NOT NULL, version BIGINT NOT NULL, name TEXT NOT NULL, applied_at BIGINT NOT NULL, PRIMARY KEY (capability, version))";

/// Where databases made before per-capability migrations recorded the platform's steps.
fn legacy_table(dialect: Dialect) -> (&'static str, &'static str, &'static str) {
    match dialect {
        Dialect::Sqlite => (
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
            "SELECT version, description FROM _sqlx_migrations WHERE success",
            "_sqlx_migrations",
        ),
        Dialect::Postgres => (
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'tsunagu_migrations'",
            "SELECT version, name FROM tsunagu_migrations",
            "tsunagu_migrations",
        ),
    }
}

/// The capability whose steps the legacy tables recorded.
pub const PLATFORM: &str = "platform";

fn check(sets: &[Migrations]) -> Result<()> {
    let mut seen = HashSet::new();
    for set in sets {
        if !seen.insert(set.capability) {
            return Err(StoreError::Database(format!(
                "migrations of `{}` are listed twice",
                set.capability
            )));
        }
        for (i, step) in set.steps.iter().enumerate() {
            if step.version as usize != i + 1 {
                return Err(StoreError::Database(format!(
                    "migrations of `{}` must be numbered 1, 2, 3, …: step {} is `{}`",
                    set.capability,
                    i + 1,
                    step.version
                )));
            }
        }
    }
    Ok(())
}

/// Applies the steps of `sets` that the database has not seen.
pub(crate) fn migrate(conn: &mut dyn Conn, sets: &[Migrations], now: i64) -> Result<()> {
    check(sets)?;
    in_transaction(conn, |conn| apply(conn, sets, now))
}

/// Applies the steps of `sets` that the database has not seen, inside the caller's
/// transaction.
pub(crate) fn apply(conn: &mut dyn Conn, sets: &[Migrations], now: i64) -> Result<()> {
    check(sets)?;
    {
        let dialect = conn.dialect();
        if dialect == Dialect::Postgres {
            conn.execute("SELECT pg_advisory_xact_lock($1)", &params![MIGRATION_LOCK])?;
        }
        conn.batch(CREATE_TABLE)?;
        let mut applied: BTreeMap<(String, i64), String> = BTreeMap::new();
        for row in conn.query("SELECT capability, version, name FROM tsunagu_schema", &[])? {
            let mut r = row.reader();
            let capability = r.text()?;
            let version = r.int()?;
            applied.insert((capability, version), r.text()?);
        }
        if applied.is_empty() {
            let (exists, select, table) = legacy_table(dialect);
            if conn.query_int(exists, &[])? > 0 {
                for row in conn.query(select, &[])? {
                    let mut r = row.reader();
                    let version = r.int()?;
                    let name = r.text()?;
                    conn.execute(
                        "INSERT INTO tsunagu_schema (capability, version, name, applied_at) VALUES ($1, $2, $3, $4)",
                        &params![PLATFORM, version, name.as_str(), now],
                    )?;
                    applied.insert((PLATFORM.to_owned(), version), name);
                }
                tracing::info!(table, "adopted the migration record of an earlier version");
            }
        }
        for set in sets {
            let known = set.steps.len() as i64;
            if let Some(((_, newest), _)) = applied
                .range((set.capability.to_owned(), 0)..=(set.capability.to_owned(), i64::MAX))
                .next_back()
                && *newest > known
            {
                return Err(StoreError::Database(format!(
                    "the database's `{}` schema is at step {newest}, but this binary knows only {known}: run the newer binary",
                    set.capability
                )));
            }
            for step in set.steps {
                let version = i64::from(step.version);
                if applied.contains_key(&(set.capability.to_owned(), version)) {
                    continue;
                }
                let sql = match dialect {
                    Dialect::Sqlite => step.sqlite,
                    Dialect::Postgres => step.postgres,
                };
                conn.batch(sql).map_err(|e| {
                    StoreError::Database(format!(
                        "migration {} {} {}: {e}",
                        set.capability, step.version, step.name
                    ))
                })?;
                conn.execute(
                    "INSERT INTO tsunagu_schema (capability, version, name, applied_at) VALUES ($1, $2, $3, $4)",
                    &params![set.capability, version, step.name, now],
                )?;
                tracing::info!(
                    capability = set.capability,
                    version,
                    name = step.name,
                    "migrated"
                );
            }
        }
        Ok(())
    }
}
