//! The SQLite backend (rusqlite, SQLite compiled in): a WAL-mode file with
//! `synchronous = FULL`, one writer thread and a few reader threads (`crate::pool`). It keeps
//! only what is SQLite's own: opening and tuning the file, binding `$N` parameters, reading
//! values, and multi-row inserts.

use crate::pool::{Connector, Database, WorkerConn};
use crate::sql::{BulkTable, Conn, Dialect, Param, Row, Value, multi_row_insert};
use crate::{Result, StoreError};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{OpenFlags, ffi};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Reader threads (and connections) per SQLite store.
const READERS: usize = 4;
/// Rows per multi-row INSERT (SQLite allows 32,766 parameters a statement).
const ROWS_PER_INSERT: usize = 500;
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;

pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, message) => {
            let text = message.clone().unwrap_or_else(|| f.to_string());
            match f.code {
                ffi::ErrorCode::ConstraintViolation => StoreError::Conflict(text),
                ffi::ErrorCode::DatabaseBusy
                | ffi::ErrorCode::DatabaseLocked
                | ffi::ErrorCode::CannotOpen
                | ffi::ErrorCode::SystemIoFailure
                | ffi::ErrorCode::DiskFull
                | ffi::ErrorCode::PermissionDenied
                | ffi::ErrorCode::ReadOnly => StoreError::Unavailable(text),
                ffi::ErrorCode::DatabaseCorrupt | ffi::ErrorCode::NotADatabase => {
                    StoreError::Corrupt(text)
                }
                _ => StoreError::Database(text),
            }
        }
        _ => StoreError::Database(e.to_string()),
    }
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Param::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Param::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Param::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Param::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Param::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
        })
    }
}

/// A connection to the SQLite file.
pub(crate) struct SqliteConn {
    conn: rusqlite::Connection,
}

/// The index into `params` of a statement's parameter: `$N` and `?N` name it by number,
/// a bare `?` takes the next position.
fn parameter_index(name: Option<&str>, position: usize) -> Option<usize> {
    match name {
        None => Some(position),
        Some(name) => name
            .strip_prefix('$')
            .or_else(|| name.strip_prefix('?'))
            .and_then(|n| n.parse::<usize>().ok()),
    }
}

fn bind(stmt: &mut rusqlite::Statement<'_>, params: &[Param<'_>]) -> Result<()> {
    for i in 1..=stmt.parameter_count() {
        let index = parameter_index(stmt.parameter_name(i), i)
            .ok_or_else(|| StoreError::Database(format!("parameter {i} is neither $N nor ?N")))?;
        let param = params.get(index.wrapping_sub(1)).ok_or_else(|| {
            StoreError::Database(format!(
                "the statement names parameter {index}, {} given",
                params.len()
            ))
        })?;
        stmt.raw_bind_parameter(i, param).map_err(map_err)?;
    }
    Ok(())
}

fn value(v: ValueRef<'_>) -> Result<Value> {
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Text(t) => Value::Text(
            String::from_utf8(t.to_vec())
                .map_err(|_| StoreError::Corrupt("text that is not UTF-8".into()))?,
        ),
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
        ValueRef::Real(_) => return Err(StoreError::Corrupt("an unexpected REAL value".into())),
    })
}

impl Conn for SqliteConn {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(map_err)?;
        bind(&mut stmt, params)?;
        let changed = stmt.raw_execute().map_err(map_err)?;
        Ok(changed as u64)
    }

    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(map_err)?;
        bind(&mut stmt, params)?;
        let columns = stmt.column_count();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(map_err)? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(value(row.get_ref(i).map_err(map_err)?)?);
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    fn query_each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        each: &mut dyn FnMut(Row) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare(sql).map_err(map_err)?;
        bind(&mut stmt, params)?;
        let columns = stmt.column_count();
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next().map_err(map_err)? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(value(row.get_ref(i).map_err(map_err)?)?);
            }
            each(Row(values))?;
        }
        Ok(())
    }

    fn batch(&mut self, sql: &str) -> Result<()> {
        self.conn.execute_batch(sql).map_err(map_err)
    }

    fn bulk_insert(&mut self, table: &BulkTable, rows: &[Vec<Param<'_>>]) -> Result<()> {
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let sql = multi_row_insert(table, chunk.len());
            let params: Vec<Param<'_>> = chunk.iter().flatten().cloned().collect();
            // A statement per chunk size: not worth keeping prepared.
            let mut stmt = self.conn.prepare(&sql).map_err(map_err)?;
            bind(&mut stmt, &params)?;
            stmt.raw_execute().map_err(map_err)?;
        }
        Ok(())
    }
}

impl WorkerConn for SqliteConn {
    fn is_broken(&self) -> bool {
        false
    }

    fn in_transaction(&self) -> bool {
        !self.conn.is_autocommit()
    }
}

struct SqliteConnector {
    path: PathBuf,
}

impl SqliteConnector {
    fn open(&self) -> Result<SqliteConn> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Unavailable(format!("{}: {e}", self.path.display())))?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(map_err)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // `synchronous = FULL`: a commit is on disk when it returns. Each connection keeps
        // 32 MiB of pages (the default is 2 MiB); see docs/PERFORMANCE.md. `secure_delete`
        // overwrites deleted content with zeros, so an erased resident's sealed items do not
        // stay in free pages (SPEC §9).
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -32768; PRAGMA secure_delete = ON;",
        )
        .map_err(map_err)?;
        Ok(SqliteConn { conn })
    }
}

impl Connector for SqliteConnector {
    fn connect(&self) -> Result<Box<dyn WorkerConn>> {
        Ok(Box::new(self.open()?))
    }
}

/// Opens (creating if needed) the SQLite database at `path`: the connection threads and a
/// first connection that checks the file can be opened.
pub(crate) fn open(path: &Path) -> Result<Database> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .map_err(|e| StoreError::Unavailable(format!("{}: {e}", parent.display())))?;
    }
    let connector = SqliteConnector {
        path: path.to_owned(),
    };
    // Fail now, with the file's name, rather than on the first request.
    connector.open()?;
    Ok(Database::new(
        Dialect::Sqlite,
        Arc::new(connector),
        READERS,
        true,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_bound_by_their_number() {
        assert_eq!(parameter_index(Some("$4"), 1), Some(4));
        assert_eq!(parameter_index(Some("?2"), 1), Some(2));
        assert_eq!(parameter_index(None, 3), Some(3));
        assert_eq!(parameter_index(Some(":name"), 1), None);
    }

    #[test]
    fn out_of_order_placeholders_read_the_right_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = SqliteConnector {
            path: dir.path().join("t.db"),
        }
        .open()
        .unwrap();
        let rows = c
            .query(
                "SELECT $3, $1, $2, $1",
                &[Param::from("a"), Param::Int(2), Param::from(&b"c"[..])],
            )
            .unwrap();
        assert_eq!(
            rows,
            vec![Row(vec![
                Value::Bytes(b"c".to_vec()),
                Value::Text("a".into()),
                Value::Int(2),
                Value::Text("a".into()),
            ])]
        );
        let err = c.query("SELECT $2", &[Param::Int(1)]).unwrap_err();
        assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    }
}
