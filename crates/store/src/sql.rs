//! The neutral layer between the store's one implementation and its two backends: parameters,
//! rows, and a connection that runs SQL.
//!
//! Statements are written once, with PostgreSQL's `$1`, `$2`, … placeholders (SQLite reads
//! `$N` as a named parameter; the SQLite backend binds it by its number). Values are the four
//! kinds both databases share — 64-bit integers, text, bytes, booleans — and NULL. The few
//! statements that must differ (taking the write lock, bulk inserts, migrations) ask the
//! connection's [`Dialect`].

use crate::{Result, StoreError};
use std::borrow::Cow;

/// Which database a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `sqlite` or `postgres`.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }
}

/// A statement parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param<'a> {
    Null,
    Int(i64),
    Text(Cow<'a, str>),
    Bytes(Cow<'a, [u8]>),
    Bool(bool),
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}

impl From<u32> for Param<'_> {
    fn from(v: u32) -> Self {
        Param::Int(i64::from(v))
    }
}

impl From<bool> for Param<'_> {
    fn from(v: bool) -> Self {
        Param::Bool(v)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(Cow::Borrowed(v))
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(Cow::Borrowed(v.as_str()))
    }
}

impl From<String> for Param<'_> {
    fn from(v: String) -> Self {
        Param::Text(Cow::Owned(v))
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Param::Bytes(Cow::Borrowed(v))
    }
}

impl<'a> From<&'a Vec<u8>> for Param<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Param::Bytes(Cow::Borrowed(v.as_slice()))
    }
}

impl<'a, T> From<Option<T>> for Param<'a>
where
    T: Into<Param<'a>>,
{
    fn from(v: Option<T>) -> Self {
        v.map(Into::into).unwrap_or(Param::Null)
    }
}

impl<'a> From<&'a Option<String>> for Param<'a> {
    fn from(v: &'a Option<String>) -> Self {
        v.as_deref().into()
    }
}

impl<'a> From<&'a Option<Vec<u8>>> for Param<'a> {
    fn from(v: &'a Option<Vec<u8>>) -> Self {
        v.as_deref().into()
    }
}

macro_rules! id_params {
    ($($id:ident),*) => {
        $(
            impl<'a> From<&'a tsunagu_core::$id> for Param<'a> {
                fn from(v: &'a tsunagu_core::$id) -> Self {
                    Param::Text(Cow::Borrowed(v.as_str()))
                }
            }
        )*
    };
}

id_params!(
    AccountId, DeviceId, ServiceId, PurposeId, ConsentId, TicketId, GrantId, PairwiseId, MemberId,
    RequestId
);

/// `[Param; N]` from expressions that convert into parameters.
#[macro_export]
macro_rules! params {
    ($($p:expr),* $(,)?) => {
        [$($crate::sql::Param::from($p)),*]
    };
}

/// A value read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    Bool(bool),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Bool(_) => "a boolean",
        }
    }
}

/// One result row: its values in the order of the statement's columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Reads the columns in order.
    pub fn reader(self) -> RowReader {
        RowReader {
            values: self.0.into_iter(),
            column: 0,
        }
    }
}

/// Reads a row's columns one after another, in the order of the statement's column list.
pub struct RowReader {
    values: std::vec::IntoIter<Value>,
    column: usize,
}

impl RowReader {
    fn next(&mut self) -> Result<Value> {
        self.column += 1;
        self.values
            .next()
            .ok_or_else(|| StoreError::Corrupt(format!("row has no column {}", self.column)))
    }

    fn wrong(&self, wanted: &str, got: &Value) -> StoreError {
        StoreError::Corrupt(format!(
            "column {}: expected {wanted}, found {}",
            self.column,
            got.kind()
        ))
    }

    pub fn int(&mut self) -> Result<i64> {
        match self.next()? {
            Value::Int(v) => Ok(v),
            other => Err(self.wrong("an integer", &other)),
        }
    }

    pub fn opt_int(&mut self) -> Result<Option<i64>> {
        match self.next()? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(v)),
            other => Err(self.wrong("an integer or NULL", &other)),
        }
    }

    /// An identifier (stored as text).
    pub fn id<T: From<String>>(&mut self) -> Result<T> {
        self.text().map(T::from)
    }

    pub fn opt_id<T: From<String>>(&mut self) -> Result<Option<T>> {
        Ok(self.opt_text()?.map(T::from))
    }

    /// A non-negative integer.
    pub fn u64(&mut self) -> Result<u64> {
        let v = self.int()?;
        u64::try_from(v)
            .map_err(|_| StoreError::Corrupt(format!("column {}: negative", self.column)))
    }

    pub fn text(&mut self) -> Result<String> {
        match self.next()? {
            Value::Text(v) => Ok(v),
            other => Err(self.wrong("text", &other)),
        }
    }

    pub fn opt_text(&mut self) -> Result<Option<String>> {
        match self.next()? {
            Value::Null => Ok(None),
            Value::Text(v) => Ok(Some(v)),
            other => Err(self.wrong("text or NULL", &other)),
        }
    }

    pub fn bytes(&mut self) -> Result<Vec<u8>> {
        match self.next()? {
            Value::Bytes(v) => Ok(v),
            other => Err(self.wrong("bytes", &other)),
        }
    }

    pub fn opt_bytes(&mut self) -> Result<Option<Vec<u8>>> {
        match self.next()? {
            Value::Null => Ok(None),
            Value::Bytes(v) => Ok(Some(v)),
            other => Err(self.wrong("bytes or NULL", &other)),
        }
    }

    /// A boolean (SQLite stores it as 0 or 1).
    pub fn bool(&mut self) -> Result<bool> {
        match self.next()? {
            Value::Bool(v) => Ok(v),
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            other => Err(self.wrong("a boolean", &other)),
        }
    }

    /// Text parsed by `parse` (an enum's stored name); `what` names it in the error.
    pub fn parsed<T>(&mut self, what: &str, parse: impl FnOnce(&str) -> Option<T>) -> Result<T> {
        let text = self.text()?;
        parse(&text).ok_or_else(|| StoreError::Corrupt(format!("{what} `{text}`")))
    }

    /// A JSON array of strings (how lists of items are stored).
    pub fn string_list(&mut self) -> Result<Vec<String>> {
        let text = self.text()?;
        serde_json::from_str(&text).map_err(|_| {
            StoreError::Corrupt(format!("column {}: not a list of strings", self.column))
        })
    }

    /// A 32-byte hash.
    pub fn hash32(&mut self) -> Result<[u8; 32]> {
        self.bytes()?
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("column {}: not 32 bytes", self.column)))
    }
}

/// A list of strings as stored (a JSON array).
pub fn string_list(items: &[String]) -> String {
    serde_json::to_string(items).expect("a list of strings serializes")
}

/// The type of a bulk-inserted column (PostgreSQL's `UNNEST` needs typed arrays).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Int,
    Text,
    Bytes,
}

/// A table that insert-only changes may be written to in bulk: one multi-row statement per
/// table for a whole batch.
#[derive(Debug)]
pub struct BulkTable {
    pub table: &'static str,
    pub columns: &'static [(&'static str, ColumnType)],
    /// Appended to the statement, e.g. ` ON CONFLICT DO NOTHING`.
    pub tail: &'static str,
}

/// A connection, inside or outside a transaction. Implemented by each backend.
pub trait Conn {
    fn dialect(&self) -> Dialect;

    /// Runs a statement; returns the number of rows it changed.
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64>;

    /// Runs a query and returns every row.
    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>>;

    /// Runs a query and hands its rows to `each` one at a time, without holding them all
    /// (a snapshot of a whole table).
    fn query_each(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        each: &mut dyn FnMut(Row) -> Result<()>,
    ) -> Result<()> {
        for row in self.query(sql, params)? {
            each(row)?;
        }
        Ok(())
    }

    /// Runs statements without parameters (transaction control, migrations).
    fn batch(&mut self, sql: &str) -> Result<()>;

    /// Inserts rows into a table, as few statements as the database allows.
    fn bulk_insert(&mut self, table: &BulkTable, rows: &[Vec<Param<'_>>]) -> Result<()>;

    /// The first row of a query, if any.
    fn query_opt(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first column of the first row as an integer (`COUNT(*)` and the like).
    fn query_int(&mut self, sql: &str, params: &[Param<'_>]) -> Result<i64> {
        self.query_opt(sql, params)?
            .ok_or_else(|| StoreError::Corrupt("the query returned no row".into()))?
            .reader()
            .int()
    }

    /// Starts a transaction that writes: on SQLite it takes the database's write lock at once
    /// (`BEGIN IMMEDIATE`), so the transaction never fails to upgrade a read lock later.
    fn begin_write(&mut self) -> Result<()> {
        match self.dialect() {
            Dialect::Sqlite => self.batch("BEGIN IMMEDIATE"),
            Dialect::Postgres => self.batch("BEGIN"),
        }
    }

    fn commit(&mut self) -> Result<()> {
        self.batch("COMMIT")
    }

    fn rollback(&mut self) -> Result<()> {
        self.batch("ROLLBACK")
    }
}

/// Runs `f` in a write transaction: committed when it returns `Ok`, rolled back otherwise.
pub fn in_transaction<T>(
    conn: &mut dyn Conn,
    f: impl FnOnce(&mut dyn Conn) -> Result<T>,
) -> Result<T> {
    conn.begin_write()?;
    match f(conn) {
        Ok(value) => {
            conn.commit()?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rollback) = conn.rollback() {
                tracing::error!(error = %rollback, "rollback failed");
            }
            Err(e)
        }
    }
}

/// A conditional write changed exactly one row, or its precondition no longer holds.
pub fn expect_one(changed: u64, what: &str) -> Result<()> {
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "precondition of {what} no longer holds"
        )))
    }
}

/// `INSERT INTO table (a, b) VALUES ($1, $2), ($3, $4), …` for `rows` rows.
pub fn multi_row_insert(table: &BulkTable, rows: usize) -> String {
    let columns = table.columns.len();
    let mut sql = String::with_capacity(64 + rows * columns * 6);
    sql.push_str("INSERT INTO ");
    sql.push_str(table.table);
    sql.push_str(" (");
    for (i, (name, _)) in table.columns.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(name);
    }
    sql.push_str(") VALUES");
    let mut n = 1;
    for r in 0..rows {
        sql.push_str(if r == 0 { " (" } else { ", (" });
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&n.to_string());
            n += 1;
        }
        sql.push(')');
    }
    sql.push_str(table.tail);
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: BulkTable = BulkTable {
        table: "t",
        columns: &[("a", ColumnType::Int), ("b", ColumnType::Text)],
        tail: " ON CONFLICT DO NOTHING",
    };

    #[test]
    fn a_multi_row_insert_numbers_its_parameters() {
        assert_eq!(
            multi_row_insert(&T, 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"
        );
    }

    #[test]
    fn a_row_is_read_in_order_and_wrong_types_name_the_column() {
        let mut r = Row(vec![
            Value::Int(7),
            Value::Text("x".into()),
            Value::Null,
            Value::Int(1),
        ])
        .reader();
        assert_eq!(r.int().unwrap(), 7);
        assert_eq!(r.text().unwrap(), "x");
        assert_eq!(r.opt_bytes().unwrap(), None);
        assert!(r.bool().unwrap());
        let err = Row(vec![Value::Text("x".into())])
            .reader()
            .int()
            .unwrap_err();
        assert_eq!(
            err,
            StoreError::Corrupt("column 1: expected an integer, found text".into())
        );
    }

    #[test]
    fn options_become_null() {
        let none: Option<&str> = None;
        assert_eq!(Param::from(none), Param::Null);
        assert_eq!(Param::from(Some(3i64)), Param::Int(3));
        assert_eq!(Param::from(&Some("a".to_owned())), Param::Text("a".into()));
    }
}
