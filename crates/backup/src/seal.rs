//! Encryption of a backup to an age recipient (X25519): the operator's recovery key, whose
//! private half stays off the servers (and away from whoever runs them).

use std::io::{BufRead, BufReader, Read, Write};
use std::str::FromStr;

/// Why a backup cannot be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("recipient `{0}` is not an age public key (age1… or age1pq1…)")]
    Recipient(String),
    #[error("identity file {0}")]
    Identity(String),
    #[error("the identity key does not match the key this backup was encrypted to")]
    WrongIdentity,
    #[error("not an age-encrypted file (or its header is damaged): {0}")]
    NotAge(String),
    #[error("encrypting: {0}")]
    Encrypt(String),
}

/// An age recipient: X25519 (`age1…`, what `age-keygen` makes and Debian's `age` decrypts)
/// or the post-quantum hybrid (`age1pq1…`).
pub type Recipient = Box<dyn age::Recipient + Send + Sync>;

/// Parses an age recipient.
// age 0.13 deprecates X25519 keys in favour of the post-quantum hybrid; X25519 stays what
// operators' tools (Debian's age 1.1) make and read, so both are accepted.
#[allow(deprecated)]
pub fn recipient(text: &str) -> Result<Recipient, SealError> {
    let text = text.trim();
    if let Ok(pq) = age::pq::Recipient::from_str(text) {
        return Ok(Box::new(pq));
    }
    age::x25519::Recipient::from_str(text)
        .map(|r| Box::new(r) as Recipient)
        .map_err(|_| SealError::Recipient(text.into()))
}

/// The identities of an age identity file (as `age-keygen` writes it).
pub fn identities(
    text: &str,
    name: &str,
) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, SealError> {
    let file = age::IdentityFile::from_buffer(text.as_bytes())
        .map_err(|e| SealError::Identity(format!("{name}: {e}")))?;
    let identities = file
        .into_identities()
        .map_err(|e| SealError::Identity(format!("{name}: {e}")))?;
    if identities.is_empty() {
        return Err(SealError::Identity(format!(
            "{name}: no age identity in it"
        )));
    }
    Ok(identities)
}

/// Wraps `out` so what is written is encrypted to `recipient`; call `finish` on the result.
pub fn encrypt<W: Write>(
    out: W,
    recipient: &Recipient,
) -> Result<age::stream::StreamWriter<W>, SealError> {
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(recipient.as_ref() as &dyn age::Recipient))
            .map_err(|e| SealError::Encrypt(e.to_string()))?;
    encryptor
        .wrap_output(out)
        .map_err(|e| SealError::Encrypt(e.to_string()))
}

/// Decrypts `input` with one of `identities`; the plaintext is authenticated chunk by chunk
/// as it is read (a changed or cut ciphertext fails the read).
pub fn decrypt<R: Read + Send>(
    input: R,
    identities: &[Box<dyn age::Identity + Send + Sync>],
) -> Result<impl BufRead + Send + use<R>, SealError> {
    let decryptor = age::Decryptor::new(input).map_err(|e| SealError::NotAge(e.to_string()))?;
    let reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => SealError::WrongIdentity,
            other => SealError::NotAge(other.to_string()),
        })?;
    Ok(BufReader::with_capacity(1 << 16, reader))
}

#[cfg(test)]
#[allow(deprecated)] // X25519 keys, as the issue asks (see `recipient`).
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    fn sealed(plaintext: &[u8]) -> (Vec<u8>, String) {
        let id = age::x25519::Identity::generate();
        let mut w = encrypt(Vec::new(), &recipient(&id.to_public().to_string()).unwrap()).unwrap();
        w.write_all(plaintext).unwrap();
        (
            w.finish().unwrap(),
            id.to_string().expose_secret().to_string(),
        )
    }

    fn open(bytes: &[u8], key: &str) -> Result<Vec<u8>, String> {
        let ids = identities(key, "key").map_err(|e| e.to_string())?;
        let mut r = decrypt(bytes, &ids).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    #[test]
    fn a_sealed_stream_opens_with_its_identity_only() {
        let (bytes, key) = sealed(b"hello");
        assert_eq!(open(&bytes, &key).unwrap(), b"hello");
        let other = age::x25519::Identity::generate();
        let err = open(&bytes, other.to_string().expose_secret()).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
    }

    #[test]
    fn a_cut_or_changed_ciphertext_does_not_open() {
        let (bytes, key) = sealed(&[7u8; 200_000]);
        assert!(open(&bytes[..bytes.len() - 1], &key).is_err());
        assert!(open(&bytes[..bytes.len() - 70_000], &key).is_err());
        let mut changed = bytes.clone();
        let at = changed.len() - 10;
        changed[at] ^= 1;
        assert!(open(&changed, &key).is_err());
    }

    #[test]
    fn a_post_quantum_recipient_works_too() {
        let id = age::pq::Identity::generate();
        let r = recipient(&id.to_public().to_string()).unwrap();
        let mut w = encrypt(Vec::new(), &r).unwrap();
        w.write_all(b"pq").unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(open(&bytes, id.to_string().expose_secret()).unwrap(), b"pq");
    }

    #[test]
    fn a_recipient_must_be_an_age_key() {
        assert!(recipient("age1notakey").is_err());
        let id = age::x25519::Identity::generate();
        assert!(recipient(&id.to_public().to_string()).is_ok());
    }
}
