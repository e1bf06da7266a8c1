//! Taking a backup from a live database and restoring one into an empty database, through
//! the store's [`Database::export`] and [`Database::import`].
//!
//! A backup records a signed tree head that covers exactly the leaves in it: the newest
//! stored tree head when it does, or else one signed at backup time with the platform's
//! ledger key (opened with the keyring, which itself is never written) and added to the
//! backup's `ledger_sths`. So a restored server serves that very tree head, and auditors'
//! saved heads stay consistent with it.

use crate::check::{LedgerCheck, VerifyError};
use crate::format::{FORMAT, FORMAT_VERSION, Header, LedgerRecord, Reader, Table, Value, Writer};
use std::io::{BufRead, Write};
use tsunagu_crypto::aead::Keyring;
use tsunagu_crypto::b64;
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_ledger::{MerkleTree, SignedTreeHead};
use tsunagu_store::sql::{self, Conn};
use tsunagu_store::{
    Database, ExportSink, ImportSource, Layout, Migrations, StoreError, TableLayout,
};

fn refused(e: impl std::fmt::Display) -> StoreError {
    StoreError::Refused(e.to_string())
}

fn to_format(v: sql::Value) -> Value {
    match v {
        sql::Value::Null => Value::Null,
        sql::Value::Int(i) => Value::Int(i),
        sql::Value::Bool(b) => Value::Int(i64::from(b)),
        sql::Value::Text(t) => Value::Text(t),
        sql::Value::Bytes(b) => Value::Bytes(b),
    }
}

fn to_store(v: Value) -> sql::Value {
    match v {
        Value::Null => sql::Value::Null,
        Value::Int(i) => sql::Value::Int(i),
        Value::Text(t) => sql::Value::Text(t),
        Value::Bytes(b) => sql::Value::Bytes(b),
    }
}

/// The ledger keys in the snapshot, opened with the keyring, each with whether it signs tree
/// heads at `at`: the newest key activated by then among the first and those announced in
/// the ledger (ADR 0019).
fn ledger_keys(
    conn: &mut dyn Conn,
    keyring: &Keyring,
    at: i64,
) -> Result<Vec<(bool, SigningKey)>, StoreError> {
    let mut keys = Vec::new();
    let mut current = None;
    for (i, row) in conn
        .query(
            "SELECT name, alg, secret, activate_at, announcement FROM platform_keys WHERE purpose = 'ledger' ORDER BY activate_at, created_at, name",
            &[],
        )?
        .into_iter()
        .enumerate()
    {
        let mut r = row.reader();
        let name = r.text()?;
        let alg = r.text()?;
        let secret = r.bytes()?;
        let activate_at = r.int()?;
        let announced = r.opt_text()?.is_some();
        let pkcs8 = keyring.open(name.as_bytes(), &secret).map_err(|_| {
            refused(format!(
                "the ledger key `{name}` cannot be opened with this keyring (wrong keyring file?)"
            ))
        })?;
        let alg = Alg::parse(&alg)
            .filter(|a| *a == Alg::EdDsa)
            .ok_or_else(|| refused(format!("ledger key `{name}`: algorithm {alg}")))?;
        let key = SigningKey::from_pkcs8(alg, &pkcs8).map_err(refused)?;
        if i == 0 || (announced && activate_at <= at) {
            current = Some(i);
        }
        keys.push((false, key));
    }
    if let Some(i) = current {
        keys[i].0 = true;
    }
    Ok(keys)
}

/// Sends a snapshot to a [`Writer`].
struct CreateSink<W: Write + Send + 'static> {
    out: Option<W>,
    writer: Option<Writer<W>>,
    keyring: Keyring,
    created_at: i64,
    /// A tree head signed now, as a row of `ledger_sths` (its index) still to write.
    extra: Option<(usize, Vec<Value>)>,
    header: Option<Header>,
}

impl<W: Write + Send + 'static> CreateSink<W> {
    fn writer(&mut self) -> Result<&mut Writer<W>, StoreError> {
        self.writer
            .as_mut()
            .ok_or_else(|| StoreError::Database("the backup was not started".into()))
    }

    /// Writes the new tree head's row once every stored one is written.
    fn flush_extra(&mut self, next_table: Option<usize>) -> Result<(), StoreError> {
        let Some((table, _)) = &self.extra else {
            return Ok(());
        };
        let table = *table;
        if next_table == Some(table) || self.writer()?.current_table() != Some(table) {
            return Ok(());
        }
        if let Some((_, row)) = self.extra.take() {
            self.writer()?.row(table, &row).map_err(refused)?;
        }
        Ok(())
    }
}

impl<W: Write + Send + 'static> ExportSink for CreateSink<W> {
    fn start(&mut self, layout: &Layout, conn: &mut dyn Conn) -> Result<(), StoreError> {
        let mut tree = MerkleTree::new();
        conn.query_each(
            "SELECT leaf_hash FROM ledger_leaves ORDER BY idx",
            &[],
            &mut |row| {
                tree.push(row.reader().hash32()?);
                Ok(())
            },
        )?;
        let size = tree.size();
        let root = tree.root(size).map_err(refused)?;
        let keys = ledger_keys(conn, &self.keyring, self.created_at)?;
        let latest = conn.query_opt(
            "SELECT tree_size, root_hash, timestamp, key_id, signature FROM ledger_sths ORDER BY tree_size DESC LIMIT 1",
            &[],
        )?;
        let mut stored = None;
        if let Some(row) = latest {
            let mut r = row.reader();
            let sth = SignedTreeHead {
                tree_size: r.u64()?,
                root_hash: b64::std_encode(r.bytes()?),
                timestamp: r.int()?,
                key_id: r.text()?,
                signature: b64::std_encode(r.bytes()?),
            };
            if sth.tree_size > size {
                return Err(StoreError::Corrupt(format!(
                    "a tree head of size {} over {size} leaves",
                    sth.tree_size
                )));
            }
            if sth.tree_size == size {
                stored = Some(sth);
            }
        }
        let mut tables: Vec<Table> = layout
            .tables
            .iter()
            .map(|t: &TableLayout| Table {
                name: t.name.clone(),
                columns: t.columns.clone(),
                rows: t.rows,
            })
            .collect();
        let (sth, key) = match stored {
            Some(sth) => {
                let key = keys
                    .iter()
                    .find(|(_, k)| k.kid() == sth.key_id)
                    .ok_or_else(|| {
                        refused(format!(
                            "the newest tree head is signed by key {}, which is not among the ledger keys",
                            sth.key_id
                        ))
                    })?;
                let jwk = key.1.public_jwk().to_value();
                (sth, jwk)
            }
            None => {
                let (_, key) = keys
                    .iter()
                    .find(|(active, _)| *active)
                    .ok_or_else(|| refused("the database has no active ledger key"))?;
                let sth =
                    SignedTreeHead::sign(key, size, &root, self.created_at).map_err(refused)?;
                let index = tables
                    .iter()
                    .position(|t| t.name == "ledger_sths")
                    .ok_or_else(|| refused("the database has no ledger_sths table"))?;
                let signature = b64::std_decode(&sth.signature).map_err(refused)?;
                let mut row = Vec::new();
                for column in &tables[index].columns {
                    row.push(match column.as_str() {
                        "tree_size" => Value::Int(size as i64),
                        "root_hash" => Value::Bytes(root.to_vec()),
                        "timestamp" => Value::Int(self.created_at),
                        "key_id" => Value::Text(sth.key_id.clone()),
                        "signature" => Value::Bytes(signature.clone()),
                        other => {
                            return Err(refused(format!(
                                "ledger_sths has a column `{other}` this binary cannot fill"
                            )));
                        }
                    });
                }
                tables[index].rows += 1;
                self.extra = Some((index, row));
                (sth, key.public_jwk().to_value())
            }
        };
        let header = Header {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            created_at: self.created_at,
            source_backend: layout.backend.clone(),
            schema: layout.schema.clone(),
            tables,
            ledger: LedgerRecord { key, sth },
        };
        let out = self
            .out
            .take()
            .ok_or_else(|| StoreError::Database("the backup was started twice".into()))?;
        self.header = Some(header.clone());
        self.writer = Some(Writer::new(out, header).map_err(refused)?);
        Ok(())
    }

    fn row(&mut self, table: usize, values: Vec<sql::Value>) -> Result<(), StoreError> {
        self.flush_extra(Some(table))?;
        let values: Vec<Value> = values.into_iter().map(to_format).collect();
        self.writer()?.row(table, &values).map_err(refused)
    }

    fn finish(&mut self) -> Result<(), StoreError> {
        self.flush_extra(None)?;
        let writer = self
            .writer
            .take()
            .ok_or_else(|| StoreError::Database("the backup was not started".into()))?;
        self.out = Some(writer.finish().map_err(refused)?);
        Ok(())
    }
}

/// What a backup holds, once written or restored.
#[derive(Debug, Clone)]
pub struct Summary {
    pub header: Header,
    pub rows: u64,
}

/// Takes a backup of `db` into `out` (the plaintext: wrap `out` in [`crate::seal::encrypt`]
/// first). `keyring` opens the ledger key, to sign a tree head over every leaf in the
/// snapshot when the newest stored one does not cover them all.
pub async fn create<W: Write + Send + 'static>(
    db: &Database,
    keyring: Keyring,
    out: W,
    created_at: i64,
) -> Result<(W, Summary), StoreError> {
    let sink = CreateSink {
        out: Some(out),
        writer: None,
        keyring,
        created_at,
        extra: None,
        header: None,
    };
    let (mut sink, _) = db.export(sink).await?;
    let out = sink
        .out
        .take()
        .ok_or_else(|| StoreError::Database("the backup was not finished".into()))?;
    let header = sink
        .header
        .take()
        .ok_or_else(|| StoreError::Database("the backup was not started".into()))?;
    let rows = header.total_rows();
    Ok((out, Summary { header, rows }))
}

/// Rows from a [`Reader`], checked on the way: the ledger leaves must rebuild the recorded
/// tree head, whose signature was checked before the first row.
struct RestoreSource<R: BufRead + Send + 'static> {
    reader: Reader<R>,
    ledger: LedgerCheck,
}

impl<R: BufRead + Send + 'static> ImportSource for RestoreSource<R> {
    fn layout(&self) -> Layout {
        let header = self.reader.header();
        Layout {
            backend: header.source_backend.clone(),
            schema: header.schema.clone(),
            tables: header
                .tables
                .iter()
                .map(|t| TableLayout {
                    name: t.name.clone(),
                    columns: t.columns.clone(),
                    rows: t.rows,
                })
                .collect(),
        }
    }

    fn next_row(&mut self) -> Result<Option<(usize, Vec<sql::Value>)>, StoreError> {
        match self.reader.next_row().map_err(refused)? {
            Some((table, values)) => {
                self.ledger.row(table, &values).map_err(refused)?;
                Ok(Some((table, values.into_iter().map(to_store).collect())))
            }
            None => Ok(None),
        }
    }

    fn finish(&mut self) -> Result<(), StoreError> {
        if self.reader.next_row().map_err(refused)?.is_some() {
            return Err(refused("rows after the last table"));
        }
        self.ledger
            .finish(self.reader.header())
            .map(|_| ())
            .map_err(refused)
    }
}

/// Why a restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Restores a backup's plaintext into the empty database `db`, all or nothing; `sets` are
/// this binary's migrations (the platform's and every capability's).
pub async fn restore<R: BufRead + Send + 'static>(
    db: &Database,
    sets: Vec<Migrations>,
    input: R,
    now: i64,
) -> Result<Summary, RestoreError> {
    let reader = Reader::new(input).map_err(VerifyError::from)?;
    let ledger = LedgerCheck::new(reader.header()).map_err(VerifyError::from)?;
    let (source, rows) = db
        .import(sets, RestoreSource { reader, ledger }, now)
        .await?;
    Ok(Summary {
        header: source.reader.header().clone(),
        rows,
    })
}
