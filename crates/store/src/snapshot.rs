//! The whole database as rows, out and in: [`Database::export`] reads every table in one
//! read transaction (a consistent snapshot while the server keeps running), and
//! [`Database::import`] writes every table into an empty database in one transaction (all or
//! nothing). What the rows become is the caller's business (`tsunagu-backup`'s format).
//!
//! Tables and columns are read from the database's catalogue, and tables are ordered so
//! that a table comes after those its foreign keys reference. Values are the neutral
//! ones — integers, text, bytes, NULL — with booleans as the integers 0 and 1 (as SQLite
//! stores them), so both backends give the same rows; on import a boolean column gets a
//! boolean again.

use crate::migrate::{self, Migrations};
use crate::pool::Database;
use crate::sql::{Conn, Dialect, Param, Value, in_transaction};
use crate::{Result, StoreError};
use std::collections::{BTreeMap, BTreeSet};

/// Tables that record the schema rather than data: described by [`Layout::schema`].
const SCHEMA_TABLES: &[&str] = &["tsunagu_schema", "_sqlx_migrations", "tsunagu_migrations"];
/// Rows per INSERT statement on import.
const ROWS_PER_INSERT: usize = 100;

/// One table of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLayout {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: u64,
}

/// What a snapshot holds, before its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Each capability's newest migration step.
    pub schema: BTreeMap<String, u32>,
    /// In foreign-key order.
    pub tables: Vec<TableLayout>,
}

/// Where [`Database::export`] sends a snapshot.
pub trait ExportSink: Send + 'static {
    /// Called once before any row, inside the snapshot's transaction: `conn` reads the
    /// same snapshot.
    fn start(&mut self, layout: &Layout, conn: &mut dyn Conn) -> Result<()>;
    /// A row of `layout.tables[table]`, its values in the layout's column order.
    fn row(&mut self, table: usize, values: Vec<Value>) -> Result<()>;
    /// After the last row, still inside the transaction.
    fn finish(&mut self) -> Result<()>;
}

/// Where [`Database::import`] takes rows from.
pub trait ImportSource: Send + 'static {
    /// The schema steps and tables (with their row counts) the rows fit.
    fn layout(&self) -> Layout;
    /// The next row and the index of its table, `None` after the last.
    fn next_row(&mut self) -> Result<Option<(usize, Vec<Value>)>>;
    /// After the last row and before the commit: anything else to check (a digest).
    fn finish(&mut self) -> Result<()>;
}

/// A column as the catalogue describes it.
struct ColumnInfo {
    name: String,
    boolean: bool,
    primary_key: bool,
    /// PostgreSQL: the column takes its default from a sequence.
    serial: bool,
}

fn tables(conn: &mut dyn Conn) -> Result<Vec<String>> {
    let sql = match conn.dialect() {
        Dialect::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        }
        Dialect::Postgres => {
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1"
        }
    };
    conn.query(sql, &[])?
        .into_iter()
        .map(|r| r.reader().text())
        .collect()
}

fn columns(conn: &mut dyn Conn, table: &str) -> Result<Vec<ColumnInfo>> {
    let mut out = Vec::new();
    match conn.dialect() {
        Dialect::Sqlite => {
            for row in conn.query(
                "SELECT name, type, pk FROM pragma_table_info($1) ORDER BY cid",
                &[Param::from(table)],
            )? {
                let mut r = row.reader();
                let name = r.text()?;
                let ty = r.text()?.to_ascii_uppercase();
                out.push(ColumnInfo {
                    name,
                    boolean: ty == "BOOLEAN",
                    primary_key: r.int()? > 0,
                    serial: false,
                });
            }
        }
        Dialect::Postgres => {
            let keys: BTreeSet<String> = conn
                .query(
                    "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass($1) AND i.indisprimary",
                    &[Param::from(table)],
                )?
                .into_iter()
                .map(|r| r.reader().text())
                .collect::<Result<_>>()?;
            for row in conn.query(
                "SELECT column_name::text, data_type::text, COALESCE(column_default::text, '') FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                &[Param::from(table)],
            )? {
                let mut r = row.reader();
                let name = r.text()?;
                let ty = r.text()?;
                let default = r.text()?;
                out.push(ColumnInfo {
                    primary_key: keys.contains(&name),
                    name,
                    boolean: ty == "boolean",
                    serial: default.starts_with("nextval("),
                });
            }
        }
    }
    if out.is_empty() {
        return Err(StoreError::Database(format!(
            "table `{table}` has no columns"
        )));
    }
    Ok(out)
}

/// The tables a table's foreign keys reference (itself excluded).
fn references(conn: &mut dyn Conn, table: &str) -> Result<BTreeSet<String>> {
    let sql = match conn.dialect() {
        Dialect::Sqlite => "SELECT \"table\" FROM pragma_foreign_key_list($1)",
        Dialect::Postgres => {
            "SELECT c.relname::text FROM pg_constraint k JOIN pg_class c ON c.oid = k.confrelid WHERE k.contype = 'f' AND k.conrelid = to_regclass($1)"
        }
    };
    let mut out = BTreeSet::new();
    for row in conn.query(sql, &[Param::from(table)])? {
        let name = row.reader().text()?;
        if name != table {
            out.insert(name);
        }
    }
    Ok(out)
}

/// Orders tables so each comes after every table it references; ties by name.
pub fn foreign_key_order(references: &BTreeMap<String, BTreeSet<String>>) -> Result<Vec<String>> {
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut order = Vec::with_capacity(references.len());
    while order.len() < references.len() {
        let next = references.iter().find(|(name, refs)| {
            !placed.contains(name.as_str())
                && refs
                    .iter()
                    .all(|r| placed.contains(r.as_str()) || !references.contains_key(r))
        });
        match next {
            Some((name, _)) => {
                placed.insert(name);
                order.push(name.clone());
            }
            None => {
                let left: Vec<&str> = references
                    .keys()
                    .map(String::as_str)
                    .filter(|n| !placed.contains(n))
                    .collect();
                return Err(StoreError::Database(format!(
                    "tables whose foreign keys form a cycle: {}",
                    left.join(", ")
                )));
            }
        }
    }
    Ok(order)
}

fn data_tables(conn: &mut dyn Conn) -> Result<Vec<String>> {
    let mut refs = BTreeMap::new();
    for table in tables(conn)? {
        if SCHEMA_TABLES.contains(&table.as_str()) {
            continue;
        }
        let r = references(conn, &table)?;
        refs.insert(table, r);
    }
    foreign_key_order(&refs)
}

fn schema_steps(conn: &mut dyn Conn) -> Result<BTreeMap<String, u32>> {
    let mut out = BTreeMap::new();
    for row in conn.query(
        "SELECT capability, MAX(version) FROM tsunagu_schema GROUP BY capability",
        &[],
    )? {
        let mut r = row.reader();
        let capability = r.text()?;
        let version = u32::try_from(r.int()?)
            .map_err(|_| StoreError::Corrupt("tsunagu_schema: a version out of range".into()))?;
        out.insert(capability, version);
    }
    Ok(out)
}

/// `"a", "b"` for a column list (names come from the catalogue or a checked backup).
fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("\"{}\"", n.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn export_in(conn: &mut dyn Conn, sink: &mut dyn ExportSink) -> Result<Layout> {
    let dialect = conn.dialect();
    let schema = schema_steps(conn)?;
    let mut tables = Vec::new();
    let mut selects = Vec::new();
    for name in data_tables(conn)? {
        let info = columns(conn, &name)?;
        let columns: Vec<String> = info.iter().map(|c| c.name.clone()).collect();
        let rows = conn.query_int(&format!("SELECT COUNT(*) FROM {}", quote(&name)), &[])?;
        let keys: Vec<String> = info
            .iter()
            .filter(|c| c.primary_key)
            .map(|c| c.name.clone())
            .collect();
        let order = if keys.is_empty() {
            String::new()
        } else {
            format!(" ORDER BY {}", quoted(&keys))
        };
        selects.push(format!(
            "SELECT {} FROM {}{order}",
            quoted(&columns),
            quote(&name)
        ));
        tables.push(TableLayout {
            name,
            columns,
            rows: u64::try_from(rows).unwrap_or(0),
        });
    }
    let layout = Layout {
        backend: dialect.name().to_owned(),
        schema,
        tables,
    };
    sink.start(&layout, conn)?;
    for (index, select) in selects.iter().enumerate() {
        conn.query_each(select, &[], &mut |row| {
            let values = row
                .0
                .into_iter()
                .map(|v| match v {
                    Value::Bool(b) => Value::Int(i64::from(b)),
                    other => other,
                })
                .collect();
            sink.row(index, values)
        })?;
    }
    sink.finish()?;
    Ok(layout)
}

/// The value to bind for a column from a neutral value.
fn param(value: Value, column: &ColumnInfo, table: &str) -> Result<Param<'static>> {
    Ok(match value {
        Value::Null => Param::Null,
        Value::Int(i) if column.boolean => match i {
            0 => Param::Bool(false),
            1 => Param::Bool(true),
            _ => {
                return Err(StoreError::Refused(format!(
                    "{table}.{}: {i} where a boolean (0 or 1) is expected",
                    column.name
                )));
            }
        },
        Value::Int(i) => Param::Int(i),
        Value::Bool(b) => Param::Bool(b),
        Value::Text(t) => Param::Text(t.into()),
        Value::Bytes(b) => Param::Bytes(b.into()),
    })
}

fn insert_rows(
    conn: &mut dyn Conn,
    table: &str,
    columns: &[String],
    rows: &mut Vec<Vec<Param<'static>>>,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut sql = format!("INSERT INTO {} ({}) VALUES ", quote(table), quoted(columns));
    let mut n = 1;
    for r in 0..rows.len() {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..columns.len() {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&n.to_string());
            n += 1;
        }
        sql.push(')');
    }
    let params: Vec<Param<'static>> = rows.drain(..).flatten().collect();
    conn.execute(&sql, &params).map_err(|e| match e {
        StoreError::Conflict(m) => StoreError::Refused(format!("rows of `{table}` conflict: {m}")),
        other => other,
    })?;
    Ok(())
}

fn import_in(
    conn: &mut dyn Conn,
    sets: &[Migrations],
    source: &mut dyn ImportSource,
    now: i64,
) -> Result<u64> {
    let existing = tables(conn)?;
    if !existing.is_empty() {
        let shown: Vec<&str> = existing.iter().take(5).map(String::as_str).collect();
        return Err(StoreError::Refused(format!(
            "the target database is not empty (it has tables: {}{}): restore only into an empty database",
            shown.join(", "),
            if existing.len() > 5 { ", …" } else { "" }
        )));
    }
    let layout = source.layout();
    // The schema as the backup knew it, then its rows, then the steps this binary adds.
    let mut at_backup = Vec::new();
    for (capability, version) in &layout.schema {
        let Some(set) = sets.iter().find(|s| s.capability == capability) else {
            return Err(StoreError::Refused(format!(
                "the backup has tables of `{capability}`, which this binary does not have"
            )));
        };
        if *version as usize > set.steps.len() {
            return Err(StoreError::Refused(format!(
                "the backup's `{capability}` schema is at step {version}, but this binary knows only {}: restore with a newer binary",
                set.steps.len()
            )));
        }
        at_backup.push(Migrations {
            capability: set.capability,
            steps: &set.steps[..*version as usize],
        });
    }
    migrate::apply(conn, &at_backup, now)?;
    let mut infos = Vec::with_capacity(layout.tables.len());
    for table in &layout.tables {
        let info = columns(conn, &table.name).map_err(|_| {
            StoreError::Refused(format!(
                "the backup has a table `{}` that its schema steps do not create",
                table.name
            ))
        })?;
        let mut ordered = Vec::with_capacity(table.columns.len());
        for name in &table.columns {
            let i = info.iter().position(|c| &c.name == name).ok_or_else(|| {
                StoreError::Refused(format!(
                    "the backup's `{}` has a column `{name}` that its schema steps do not create",
                    table.name
                ))
            })?;
            ordered.push(i);
        }
        infos.push((info, ordered));
    }
    // Rows the migrations put in (the ledger head) make way for the backup's.
    for table in layout.tables.iter().rev() {
        conn.execute(&format!("DELETE FROM {}", quote(&table.name)), &[])?;
    }
    let mut pending: Vec<Vec<Param<'static>>> = Vec::new();
    let mut current = None;
    let mut total = 0u64;
    while let Some((index, values)) = source.next_row()? {
        let table = layout.tables.get(index).ok_or_else(|| {
            StoreError::Refused(format!(
                "a row of table {index}, which is not in the layout"
            ))
        })?;
        if current != Some(index) {
            if let Some(prev) = current {
                let t: &TableLayout = &layout.tables[prev];
                insert_rows(conn, &t.name, &t.columns, &mut pending)?;
            }
            current = Some(index);
        }
        let (info, ordered) = &infos[index];
        if values.len() != ordered.len() {
            return Err(StoreError::Refused(format!(
                "a row of `{}` with {} values for {} columns",
                table.name,
                values.len(),
                ordered.len()
            )));
        }
        let row = values
            .into_iter()
            .zip(ordered)
            .map(|(v, i)| param(v, &info[*i], &table.name))
            .collect::<Result<Vec<_>>>()?;
        pending.push(row);
        if pending.len() >= ROWS_PER_INSERT {
            insert_rows(conn, &table.name, &table.columns, &mut pending)?;
        }
        total += 1;
    }
    if let Some(prev) = current {
        let t = &layout.tables[prev];
        insert_rows(conn, &t.name, &t.columns, &mut pending)?;
    }
    source.finish()?;
    for (table, (info, _)) in layout.tables.iter().zip(&infos) {
        let rows = conn.query_int(&format!("SELECT COUNT(*) FROM {}", quote(&table.name)), &[])?;
        if u64::try_from(rows).ok() != Some(table.rows) {
            return Err(StoreError::Refused(format!(
                "`{}` has {rows} rows after the restore, the backup announced {}",
                table.name, table.rows
            )));
        }
        // PostgreSQL's sequences do not follow explicit values: the next one must come
        // after the restored rows.
        for column in info.iter().filter(|c| c.serial) {
            conn.query(
                &format!(
                    "SELECT setval(pg_get_serial_sequence($1, $2), COALESCE(MAX({c}), 0) + 1, false) FROM {t}",
                    c = quote(&column.name),
                    t = quote(&table.name)
                ),
                &[Param::from(table.name.as_str()), Param::from(column.name.as_str())],
            )?;
        }
    }
    migrate::apply(conn, sets, now)?;
    Ok(total)
}

impl Database {
    /// Reads every table in one read transaction (SQLite: one read transaction on the WAL
    /// file; PostgreSQL: `REPEATABLE READ, READ ONLY`) and hands the layout, then each row,
    /// to `sink`. Writers are not blocked. Returns the sink and the layout.
    pub async fn export<S: ExportSink>(&self, mut sink: S) -> Result<(S, Layout)> {
        self.read(move |conn| {
            match conn.dialect() {
                Dialect::Sqlite => conn.batch("BEGIN DEFERRED")?,
                Dialect::Postgres => {
                    conn.batch("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?
                }
            }
            let result = export_in(conn, &mut sink);
            // Nothing was written: ending the transaction either way only releases it.
            let end = conn.rollback();
            let layout = result?;
            end?;
            Ok((sink, layout))
        })
        .await
    }

    /// Writes a whole snapshot into an empty database, in one transaction: the schema at
    /// the snapshot's steps (from `sets`, the binary's migrations), the rows, then the steps
    /// this binary adds. A database that already has tables is refused; any error (a row the
    /// schema refuses, the source's own checks in [`ImportSource::finish`]) leaves the
    /// database as it was. Returns the source and the number of rows written.
    pub async fn import<S: ImportSource>(
        &self,
        sets: Vec<Migrations>,
        mut source: S,
        now: i64,
    ) -> Result<(S, u64)> {
        self.write(move |conn| {
            let rows = in_transaction(conn, |conn| import_in(conn, &sets, &mut source, now))?;
            Ok((source, rows))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_come_after_the_tables_they_reference() {
        let refs: BTreeMap<String, BTreeSet<String>> = [
            ("sessions", vec!["accounts", "devices"]),
            ("devices", vec!["accounts"]),
            ("accounts", vec![]),
            ("alerts", vec![]),
        ]
        .into_iter()
        .map(|(t, r)| (t.to_string(), r.into_iter().map(String::from).collect()))
        .collect();
        assert_eq!(
            foreign_key_order(&refs).unwrap(),
            ["accounts", "alerts", "devices", "sessions"]
        );
    }

    #[test]
    fn a_cycle_of_foreign_keys_is_named() {
        let refs: BTreeMap<String, BTreeSet<String>> = [("a", "b"), ("b", "a")]
            .into_iter()
            .map(|(t, r)| (t.to_string(), BTreeSet::from([r.to_string()])))
            .collect();
        let err = foreign_key_order(&refs).unwrap_err();
        assert!(err.to_string().contains("a, b"), "{err}");
    }
}
