//! What `tsunagu backup verify` (and every restore, before it commits) checks beyond the
//! format: the recorded signed tree head is signed by the recorded ledger key, and the
//! ledger leaves in the backup rebuild its root.

use crate::format::{FormatError, Header, Reader, Value};
use std::io::BufRead;
use tsunagu_crypto::jwk::PublicJwk;
use tsunagu_ledger::{MerkleTree, leaf_hash};

/// Why a backup's ledger does not check out.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("the recorded ledger key is not a public JWK: {0}")]
    Key(String),
    #[error("the recorded tree head names key {named}, but the recorded ledger key is {actual}")]
    KeyId { named: String, actual: String },
    #[error("the recorded tree head: {0}")]
    Sth(tsunagu_ledger::SthError),
    #[error("ledger leaf {0}: {1}")]
    Leaf(u64, String),
    #[error("the backup holds {leaves} ledger leaves but its tree head covers {sth}")]
    Size { leaves: u64, sth: u64 },
    #[error("the ledger leaves do not rebuild the recorded root")]
    Root,
    #[error("the backup has no `ledger_leaves` table with idx, leaf_hash and leaf_input")]
    NoLeaves,
}

/// Follows the rows of `ledger_leaves` as they stream by and rebuilds the tree.
pub struct LedgerCheck {
    table: Option<usize>,
    idx: usize,
    hash: usize,
    input: usize,
    tree: MerkleTree,
}

impl LedgerCheck {
    /// Checks the recorded key and tree head signature; the leaves come through [`Self::row`].
    pub fn new(header: &Header) -> Result<LedgerCheck, LedgerError> {
        let key = PublicJwk::from_value(&header.ledger.key)
            .map_err(|e| LedgerError::Key(e.to_string()))?;
        let actual = key.thumbprint();
        if actual != header.ledger.sth.key_id {
            return Err(LedgerError::KeyId {
                named: header.ledger.sth.key_id.clone(),
                actual,
            });
        }
        header.ledger.sth.verify(&key).map_err(LedgerError::Sth)?;
        let table = header
            .tables
            .iter()
            .position(|t| t.name == "ledger_leaves")
            .ok_or(LedgerError::NoLeaves)?;
        let column = |name: &str| {
            header.tables[table]
                .columns
                .iter()
                .position(|c| c == name)
                .ok_or(LedgerError::NoLeaves)
        };
        Ok(LedgerCheck {
            table: Some(table),
            idx: column("idx")?,
            hash: column("leaf_hash")?,
            input: column("leaf_input")?,
            tree: MerkleTree::new(),
        })
    }

    /// Sees one row of the backup.
    pub fn row(&mut self, table: usize, values: &[Value]) -> Result<(), LedgerError> {
        if Some(table) != self.table {
            return Ok(());
        }
        let expected = self.tree.size();
        let bad = |what: &str| LedgerError::Leaf(expected, what.to_string());
        match values.get(self.idx) {
            Some(Value::Int(i)) if u64::try_from(*i).ok() == Some(expected) => {}
            _ => return Err(bad("out of order or missing (leaves must be 0, 1, 2, …)")),
        }
        let hash: [u8; 32] = match values.get(self.hash) {
            Some(Value::Bytes(b)) => b
                .as_slice()
                .try_into()
                .map_err(|_| bad("hash is not 32 bytes"))?,
            _ => return Err(bad("no hash")),
        };
        match values.get(self.input) {
            Some(Value::Bytes(input)) if leaf_hash(input) != hash => {
                return Err(bad("its content does not match its hash"));
            }
            Some(Value::Bytes(_)) | Some(Value::Null) => {}
            _ => return Err(bad("content is neither bytes nor expired")),
        }
        self.tree.push(hash);
        Ok(())
    }

    /// After the last row: the leaves rebuild the recorded root, and the tree head covers
    /// every leaf.
    pub fn finish(&self, header: &Header) -> Result<u64, LedgerError> {
        let sth = &header.ledger.sth;
        let leaves = self.tree.size();
        if leaves != sth.tree_size {
            return Err(LedgerError::Size {
                leaves,
                sth: sth.tree_size,
            });
        }
        let root = self.tree.root(leaves).map_err(|_| LedgerError::Root)?;
        if root != sth.root().map_err(LedgerError::Sth)? {
            return Err(LedgerError::Root);
        }
        Ok(leaves)
    }
}

/// Why a backup does not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// What a verified backup holds.
#[derive(Debug, Clone)]
pub struct Report {
    pub header: Header,
    pub rows: u64,
    pub leaves: u64,
}

/// Reads a whole backup's plaintext and checks it: format version, shape, row counts,
/// digest, the tree head's signature and that the leaves rebuild its root.
pub fn verify<R: BufRead>(input: R) -> Result<Report, VerifyError> {
    let mut reader = Reader::new(input)?;
    let mut ledger = LedgerCheck::new(reader.header())?;
    let mut rows = 0;
    while let Some((table, values)) = reader.next_row()? {
        ledger.row(table, &values)?;
        rows += 1;
    }
    let header = reader.header().clone();
    let leaves = ledger.finish(&header)?;
    Ok(Report {
        header,
        rows,
        leaves,
    })
}
