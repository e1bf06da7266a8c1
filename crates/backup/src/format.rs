//! The plaintext of a backup (what age encrypts): JSON lines.
//!
//! ```text
//! {"format":"tsunagu-backup","version":1,"created_at":…,"source_backend":"sqlite",
//!  "schema":{"platform":4},"tables":[{"name":"accounts","columns":["id",…],"rows":2},…],
//!  "ledger":{"key":{…JWK…},"sth":{…signed tree head…}}}          ← the header, one line
//! ["acc_1","verified","active",{"b":"AAEC…"},…]                    ← rows, table after table,
//! …                                                                  as many as the header says
//! {"end":true,"rows":123,"sha256":"<hex>"}                          ← the trailer
//! ```
//!
//! A row is a JSON array with one value per column of its table, each typed explicitly:
//! `null`; an integer (a JSON integer, 64-bit signed); text (a JSON string); bytes
//! (`{"b":"<standard base64>"}`). There are no booleans: a boolean column is stored as the
//! integer 0 or 1 (as SQLite stores it), so a database gives the same rows on either backend.
//! The trailer's `sha256` is the lowercase hex SHA-256 of every byte before the trailer line
//! (header and rows); a reader refuses a stream whose digest, row counts or shape differ, and
//! anything after the trailer.
//!
//! This module is pure: it reads and writes byte streams and knows nothing of databases.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, Read as _, Write};

/// The format this crate writes and reads.
pub const FORMAT: &str = "tsunagu-backup";
/// Its version; a reader refuses any other.
pub const FORMAT_VERSION: u32 = 1;
/// The longest line a reader accepts (a row with its largest value, in JSON).
pub const MAX_LINE: usize = 64 * 1024 * 1024;

/// Why a backup cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("the backup is truncated: {0}")]
    Truncated(String),
    #[error("the backup is in format version {found}; this binary reads version {FORMAT_VERSION}")]
    Version { found: u64 },
    #[error("not a tsunagu backup: {0}")]
    NotABackup(String),
    #[error("the backup is damaged: {0}")]
    Damaged(String),
    #[error("the backup does not match its digest (changed or damaged)")]
    Digest,
    #[error("writing the backup: {0}")]
    Write(String),
    #[error("the backup is cut short or was changed (its encryption does not authenticate: {0})")]
    Integrity(String),
    #[error("reading the backup: {0}")]
    Io(String),
}

/// A value of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

impl Value {
    fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Int(i) => Json::from(*i),
            Value::Text(t) => Json::String(t.clone()),
            Value::Bytes(b) => {
                let mut m = Map::new();
                m.insert("b".into(), Json::String(STANDARD.encode(b)));
                Json::Object(m)
            }
        }
    }

    fn from_json(json: Json) -> Result<Value, String> {
        match json {
            Json::Null => Ok(Value::Null),
            Json::Number(n) => n
                .as_i64()
                .map(Value::Int)
                .ok_or_else(|| format!("{n} is not a 64-bit integer")),
            Json::String(s) => Ok(Value::Text(s)),
            Json::Object(mut m) if m.len() == 1 => match m.remove("b") {
                Some(Json::String(b)) => STANDARD
                    .decode(b)
                    .map(Value::Bytes)
                    .map_err(|_| "bytes that are not base64".to_string()),
                _ => Err("an object that is not {\"b\": base64}".into()),
            },
            other => Err(format!("a value of no known type: {other}")),
        }
    }
}

/// One table: its name, its columns in order, and how many rows follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: u64,
}

/// The ledger as the backup records it: the public key that signs tree heads and the tree
/// head that covers every leaf in the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerRecord {
    /// The ledger's public JWK (OKP, Ed25519).
    pub key: Json,
    pub sth: tsunagu_ledger::SignedTreeHead,
}

/// The first line of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: String,
    pub version: u32,
    /// Unix seconds.
    pub created_at: i64,
    /// `sqlite` or `postgres`: where the backup was taken (it restores to either).
    pub source_backend: String,
    /// Each capability's schema migration step, as recorded in `tsunagu_schema`.
    pub schema: BTreeMap<String, u32>,
    /// In restore order: a table comes after the tables its foreign keys reference.
    pub tables: Vec<Table>,
    pub ledger: LedgerRecord,
}

/// The last line of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Trailer {
    end: bool,
    rows: u64,
    sha256: String,
}

/// Table and column names are interpolated into SQL on restore: only lowercase ASCII
/// letters, digits and `_`, not starting with a digit.
pub fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.as_bytes()[0].is_ascii_digit()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Header {
    /// Checks what a reader relies on: the format and version, and names safe to use.
    pub fn check(&self) -> Result<(), FormatError> {
        if self.format != FORMAT {
            return Err(FormatError::NotABackup(format!("format `{}`", self.format)));
        }
        if self.version != FORMAT_VERSION {
            return Err(FormatError::Version {
                found: self.version.into(),
            });
        }
        let mut names = HashSet::new();
        for table in &self.tables {
            if !is_identifier(&table.name) || !names.insert(table.name.as_str()) {
                return Err(FormatError::Damaged(format!(
                    "table name `{}` is invalid or repeated",
                    table.name
                )));
            }
            let mut columns = HashSet::new();
            if table.columns.is_empty() {
                return Err(FormatError::Damaged(format!(
                    "table `{}` has no columns",
                    table.name
                )));
            }
            for c in &table.columns {
                if !is_identifier(c) || !columns.insert(c.as_str()) {
                    return Err(FormatError::Damaged(format!(
                        "column `{c}` of `{}` is invalid or repeated",
                        table.name
                    )));
                }
            }
        }
        for capability in self.schema.keys() {
            if !is_identifier(capability) {
                return Err(FormatError::Damaged(format!(
                    "capability name `{capability}`"
                )));
            }
        }
        Ok(())
    }

    /// Rows in all tables.
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

/// Writes a backup's plaintext: the header, then exactly the rows it announces, table after
/// table, then the trailer ([`Writer::finish`]).
pub struct Writer<W: Write> {
    out: W,
    digest: digest::Context,
    header: Header,
    table: usize,
    written: u64,
    total: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(mut out: W, header: Header) -> Result<Writer<W>, FormatError> {
        header.check()?;
        let mut digest = digest::Context::new(&digest::SHA256);
        let mut line =
            serde_json::to_vec(&header).map_err(|e| FormatError::Write(e.to_string()))?;
        line.push(b'\n');
        digest.update(&line);
        out.write_all(&line)
            .map_err(|e| FormatError::Write(e.to_string()))?;
        let mut writer = Writer {
            out,
            digest,
            header,
            table: 0,
            written: 0,
            total: 0,
        };
        writer.skip_full();
        Ok(writer)
    }

    /// The header written.
    pub fn header(&self) -> &Header {
        &self.header
    }

    fn skip_full(&mut self) {
        while self.table < self.header.tables.len()
            && self.written == self.header.tables[self.table].rows
        {
            self.table += 1;
            self.written = 0;
        }
    }

    /// The index of the table the next row belongs to (`None` when every row is written).
    pub fn current_table(&self) -> Option<usize> {
        (self.table < self.header.tables.len()).then_some(self.table)
    }

    /// Writes a row of table `table`, which must be the table whose rows are due.
    pub fn row(&mut self, table: usize, values: &[Value]) -> Result<(), FormatError> {
        let Some(due) = self.current_table() else {
            return Err(FormatError::Write(
                "more rows than the header announces".into(),
            ));
        };
        if due != table {
            return Err(FormatError::Write(format!(
                "a row of `{}` while {} rows of `{}` are still due",
                self.header
                    .tables
                    .get(table)
                    .map_or("?", |t| t.name.as_str()),
                self.header.tables[due].rows - self.written,
                self.header.tables[due].name
            )));
        }
        let columns = self.header.tables[due].columns.len();
        if values.len() != columns {
            return Err(FormatError::Write(format!(
                "a row of `{}` with {} values for {columns} columns",
                self.header.tables[due].name,
                values.len()
            )));
        }
        let json = Json::Array(values.iter().map(Value::to_json).collect());
        let mut line = serde_json::to_vec(&json).map_err(|e| FormatError::Write(e.to_string()))?;
        line.push(b'\n');
        self.digest.update(&line);
        self.out
            .write_all(&line)
            .map_err(|e| FormatError::Write(e.to_string()))?;
        self.written += 1;
        self.total += 1;
        self.skip_full();
        Ok(())
    }

    /// Writes the trailer after checking every announced row was written; returns the output.
    pub fn finish(mut self) -> Result<W, FormatError> {
        if let Some(due) = self.current_table() {
            return Err(FormatError::Write(format!(
                "{} rows of `{}` announced but not written",
                self.header.tables[due].rows - self.written,
                self.header.tables[due].name
            )));
        }
        let trailer = Trailer {
            end: true,
            rows: self.total,
            sha256: hex(self.digest.finish().as_ref()),
        };
        let mut line =
            serde_json::to_vec(&trailer).map_err(|e| FormatError::Write(e.to_string()))?;
        line.push(b'\n');
        self.out
            .write_all(&line)
            .and_then(|_| self.out.flush())
            .map_err(|e| FormatError::Write(e.to_string()))?;
        Ok(self.out)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a backup's plaintext: the header at once, then rows one by one; the trailer is
/// read and checked when the last row has been read, before [`Reader::next_row`] says
/// there are no more.
pub struct Reader<R: BufRead> {
    input: R,
    digest: Option<digest::Context>,
    header: Header,
    table: usize,
    read: u64,
    total: u64,
    line: Vec<u8>,
}

impl<R: BufRead> Reader<R> {
    /// Reads and checks the header.
    pub fn new(mut input: R) -> Result<Reader<R>, FormatError> {
        let mut line = Vec::new();
        if !read_line(&mut input, &mut line)? {
            return Err(FormatError::Truncated("the file is empty".into()));
        }
        let mut digest = digest::Context::new(&digest::SHA256);
        digest.update(&line);
        let json: Json = serde_json::from_slice(&line)
            .map_err(|_| FormatError::NotABackup("the first line is not a JSON header".into()))?;
        // The format and version first, so a newer backup gets the version error even when
        // the rest of its header is laid out differently.
        if json.get("format").and_then(Json::as_str) != Some(FORMAT) {
            return Err(FormatError::NotABackup(
                "the header does not name the format tsunagu-backup".into(),
            ));
        }
        match json.get("version").and_then(Json::as_u64) {
            Some(v) if v == u64::from(FORMAT_VERSION) => {}
            Some(found) => return Err(FormatError::Version { found }),
            None => {
                return Err(FormatError::NotABackup(
                    "the header has no format version".into(),
                ));
            }
        }
        let header: Header = serde_json::from_value(json)
            .map_err(|e| FormatError::Damaged(format!("header: {e}")))?;
        header.check()?;
        let mut reader = Reader {
            input,
            digest: Some(digest),
            header,
            table: 0,
            read: 0,
            total: 0,
            line,
        };
        reader.skip_full();
        Ok(reader)
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    fn skip_full(&mut self) {
        while self.table < self.header.tables.len()
            && self.read == self.header.tables[self.table].rows
        {
            self.table += 1;
            self.read = 0;
        }
    }

    /// The next row and the index of its table; `None` after the last one, once the trailer
    /// has been checked (digest, row count, nothing after it).
    pub fn next_row(&mut self) -> Result<Option<(usize, Vec<Value>)>, FormatError> {
        if self.table >= self.header.tables.len() {
            self.finish()?;
            return Ok(None);
        }
        let table = &self.header.tables[self.table];
        if !read_line(&mut self.input, &mut self.line)? {
            return Err(FormatError::Truncated(format!(
                "{} of {} rows of `{}` are missing",
                table.rows - self.read,
                table.rows,
                table.name
            )));
        }
        let Some(digest) = self.digest.as_mut() else {
            return Ok(None);
        };
        digest.update(&self.line);
        let json: Json = serde_json::from_slice(&self.line).map_err(|_| {
            FormatError::Damaged(format!(
                "row {} of `{}` is not JSON",
                self.read + 1,
                table.name
            ))
        })?;
        let Json::Array(items) = json else {
            return Err(FormatError::Damaged(format!(
                "row {} of `{}` is not a list of values",
                self.read + 1,
                table.name
            )));
        };
        if items.len() != table.columns.len() {
            return Err(FormatError::Damaged(format!(
                "row {} of `{}` has {} values for {} columns",
                self.read + 1,
                table.name,
                items.len(),
                table.columns.len()
            )));
        }
        let mut values = Vec::with_capacity(items.len());
        for item in items {
            values.push(Value::from_json(item).map_err(|e| {
                FormatError::Damaged(format!("row {} of `{}`: {e}", self.read + 1, table.name))
            })?);
        }
        let index = self.table;
        self.read += 1;
        self.total += 1;
        self.skip_full();
        Ok(Some((index, values)))
    }

    /// Reads and checks the trailer (once).
    fn finish(&mut self) -> Result<(), FormatError> {
        let Some(digest) = self.digest.take() else {
            return Ok(());
        };
        if !read_line(&mut self.input, &mut self.line)? {
            return Err(FormatError::Truncated(
                "the end of the backup (its digest) is missing".into(),
            ));
        }
        let trailer: Trailer = serde_json::from_slice(&self.line).map_err(|_| {
            FormatError::Damaged("more rows than the header announces, or a damaged end".into())
        })?;
        if !trailer.end || trailer.rows != self.total {
            return Err(FormatError::Damaged(format!(
                "the end records {} rows, {} were read",
                trailer.rows, self.total
            )));
        }
        if trailer.sha256 != hex(digest.finish().as_ref()) {
            return Err(FormatError::Digest);
        }
        let mut rest = [0u8; 1];
        match self.input.read(&mut rest) {
            Ok(0) => Ok(()),
            Ok(_) => Err(FormatError::Damaged(
                "bytes after the end of the backup".into(),
            )),
            Err(e) => Err(io_error(e)),
        }
    }
}

fn io_error(e: std::io::Error) -> FormatError {
    match e.kind() {
        std::io::ErrorKind::UnexpectedEof => FormatError::Truncated(e.to_string()),
        // What age's stream reader reports for a chunk that does not authenticate (a cut
        // or a changed byte).
        std::io::ErrorKind::InvalidData => FormatError::Integrity(e.to_string()),
        _ => FormatError::Io(e.to_string()),
    }
}

/// Reads one `\n`-terminated line into `line` (with its `\n`). `false` at the end of the
/// input; a line cut short, or longer than [`MAX_LINE`], is an error.
fn read_line<R: BufRead>(input: &mut R, line: &mut Vec<u8>) -> Result<bool, FormatError> {
    line.clear();
    let n = input
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', line)
        .map_err(io_error)?;
    if n == 0 {
        return Ok(false);
    }
    if line.last() != Some(&b'\n') {
        if n > MAX_LINE {
            return Err(FormatError::Damaged(format!(
                "a line longer than {MAX_LINE} bytes"
            )));
        }
        return Err(FormatError::Truncated("the last line is cut short".into()));
    }
    Ok(true)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample_header(tables: Vec<Table>) -> Header {
        Header {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            created_at: 1_790_000_000,
            source_backend: "sqlite".into(),
            schema: BTreeMap::from([("platform".to_string(), 4)]),
            tables,
            ledger: LedgerRecord {
                key: serde_json::json!({"kty": "OKP"}),
                sth: tsunagu_ledger::SignedTreeHead {
                    tree_size: 0,
                    root_hash: String::new(),
                    timestamp: 0,
                    key_id: String::new(),
                    signature: String::new(),
                },
            },
        }
    }

    /// Rows with the index of their table.
    type Rows = Vec<(usize, Vec<Value>)>;

    fn encode(header: &Header, rows: &[(usize, Vec<Value>)]) -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), header.clone()).unwrap();
        for (t, r) in rows {
            w.row(*t, r).unwrap();
        }
        w.finish().unwrap()
    }

    fn decode(bytes: &[u8]) -> Result<(Header, Rows), FormatError> {
        let mut r = Reader::new(bytes)?;
        let mut rows = Vec::new();
        while let Some(row) = r.next_row()? {
            rows.push(row);
        }
        Ok((r.header().clone(), rows))
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Int),
            ".{0,12}".prop_map(Value::Text),
            proptest::collection::vec(any::<u8>(), 0..12).prop_map(Value::Bytes),
        ]
    }

    /// Two to four tables of one to three columns, with their rows.
    fn backup() -> impl Strategy<Value = (Header, Rows)> {
        proptest::collection::vec((1usize..4, 0usize..4), 1..4).prop_flat_map(|shape| {
            let tables: Vec<Table> = shape
                .iter()
                .enumerate()
                .map(|(i, (cols, rows))| Table {
                    name: format!("t{i}"),
                    columns: (0..*cols).map(|c| format!("c{c}")).collect(),
                    rows: *rows as u64,
                })
                .collect();
            let rows: Vec<_> = shape
                .iter()
                .enumerate()
                .flat_map(|(i, (cols, rows))| {
                    (0..*rows).map(move |_| {
                        proptest::collection::vec(value(), *cols).prop_map(move |v| (i, v))
                    })
                })
                .collect();
            (Just(sample_header(tables)), rows)
        })
    }

    proptest! {
        #[test]
        fn a_backup_reads_back_as_written((header, rows) in backup()) {
            let bytes = encode(&header, &rows);
            let (h, r) = decode(&bytes).unwrap();
            prop_assert_eq!(h, header);
            prop_assert_eq!(r, rows);
        }

        #[test]
        fn any_truncation_is_refused((header, rows) in backup(), cut in any::<prop::sample::Index>()) {
            let bytes = encode(&header, &rows);
            let cut = cut.index(bytes.len());
            prop_assert!(decode(&bytes[..cut]).is_err());
        }

        #[test]
        fn any_bit_flip_is_refused((header, rows) in backup(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut bytes = encode(&header, &rows);
            let at = at.index(bytes.len());
            bytes[at] ^= 1 << bit;
            prop_assert!(decode(&bytes).is_err());
        }
    }

    #[test]
    fn values_are_typed_explicitly() {
        let header = sample_header(vec![Table {
            name: "t".into(),
            columns: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            rows: 1,
        }]);
        let bytes = encode(
            &header,
            &[(
                0,
                vec![
                    Value::Null,
                    Value::Int(-7),
                    Value::Text("{\"b\":\"x\"}".into()),
                    Value::Bytes(vec![0, 1, 2]),
                ],
            )],
        );
        let text = String::from_utf8(bytes).unwrap();
        let row = text.lines().nth(1).unwrap();
        assert_eq!(row, r#"[null,-7,"{\"b\":\"x\"}",{"b":"AAEC"}]"#);
    }

    #[test]
    fn a_newer_format_version_is_named() {
        let mut header = sample_header(vec![]);
        header.version = 2;
        let line = format!("{}\n", serde_json::to_string(&header).unwrap());
        let err = decode(line.as_bytes()).unwrap_err();
        assert!(matches!(err, FormatError::Version { found: 2 }), "{err}");
        assert!(err.to_string().contains("version 2"), "{err}");
    }

    #[test]
    fn names_that_are_not_plain_identifiers_are_refused() {
        let header = sample_header(vec![Table {
            name: "t; DROP TABLE x".into(),
            columns: vec!["a".into()],
            rows: 0,
        }]);
        assert!(Writer::new(Vec::new(), header).is_err());
        assert!(is_identifier("ledger_leaves"));
        assert!(!is_identifier("1x") && !is_identifier("A") && !is_identifier(""));
    }

    #[test]
    fn the_writer_holds_the_header_to_its_counts() {
        let header = sample_header(vec![Table {
            name: "t".into(),
            columns: vec!["a".into()],
            rows: 2,
        }]);
        let mut w = Writer::new(Vec::new(), header.clone()).unwrap();
        w.row(0, &[Value::Int(1)]).unwrap();
        assert!(w.row(0, &[Value::Int(1), Value::Null]).is_err());
        assert!(matches!(w.finish(), Err(FormatError::Write(_))));
    }
}
