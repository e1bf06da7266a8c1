//! Staff credentials and roles: Argon2id passwords (the `argon2` crate's defaults, PHC
//! strings), TOTP codes (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of skew either
//! way, through `totp-rs`), and what each role and scope allows.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use totp_rs::{Algorithm, Secret, TOTP};
use tsunagu_crypto::random;

/// TOTP period (seconds).
pub const STEP: i64 = 30;
/// Digits of a code.
pub const DIGITS: usize = 6;
/// Bytes of a TOTP secret (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;

/// A role (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Creates staff, issues and withdraws grants, runs the access review.
    SecurityOfficer,
    /// Reads reports, access logs and all ledger entries.
    Auditor,
    /// Works on residents' records within a scope.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SecurityOfficer => "security_officer",
            Role::Auditor => "auditor",
            Role::Operator => "operator",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "security_officer" => Some(Role::SecurityOfficer),
            "auditor" => Some(Role::Auditor),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

/// An operator's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Reads residents' records.
    View,
    /// Reads, updates and copies (decides residents' requests).
    Update,
    /// Deletes.
    Delete,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::View => "view",
            Scope::Update => "update",
            Scope::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "view" => Some(Scope::View),
            "update" => Some(Scope::Update),
            "delete" => Some(Scope::Delete),
            _ => None,
        }
    }

    /// Whether a grant of this scope allows `needed`: `update` includes `view`.
    pub fn allows(self, needed: Scope) -> bool {
        self == needed || (self == Scope::Update && needed == Scope::View)
    }
}

/// Whether a role and scope pair makes a valid grant: an operator needs a scope, the
/// other roles take none.
pub fn valid_grant(role: Role, scope: Option<Scope>) -> Result<(), &'static str> {
    match (role, scope) {
        (Role::Operator, None) => Err("scope: an operator's grant needs view, update or delete"),
        (Role::Operator, Some(_)) => Ok(()),
        (_, Some(_)) => Err("scope: only an operator's grant has a scope"),
        (_, None) => Ok(()),
    }
}

/// A new random password: 20 characters of base64url (120 bits).
pub fn new_password() -> Result<String, String> {
    random::token(15).map_err(|e| e.to_string())
}

/// Argon2id of the password, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt_bytes = random::bytes(16).map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether the password matches the PHC string (constant time inside `argon2`).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A PHC string that no password matches, verified against when the staff id is unknown
/// so that an unknown id costs the same time as a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        hash_password(&new_password().unwrap_or_else(|_| "decoy".into()))
            .unwrap_or_else(|_| String::new())
    })
}

/// A new TOTP secret.
pub fn new_totp_secret() -> Result<Vec<u8>, String> {
    random::bytes(SECRET_BYTES).map_err(|e| e.to_string())
}

/// The secret in base32, as authenticator apps take it.
pub fn base32(secret: &[u8]) -> String {
    Secret::Raw(secret.to_vec()).to_encoded().to_string()
}

fn percent(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `otpauth://totp/…` URI authenticator apps read from a QR code.
pub fn otpauth_uri(issuer: &str, staff_id: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        percent(issuer),
        percent(staff_id),
        base32(secret),
        percent(issuer)
    )
}

fn totp(secret: &[u8]) -> Option<TOTP> {
    TOTP::new(Algorithm::SHA1, DIGITS, 0, STEP as u64, secret.to_vec()).ok()
}

/// The code for the step containing `at` (Unix seconds).
pub fn code_at(secret: &[u8], at: i64) -> Option<String> {
    Some(totp(secret)?.generate(u64::try_from(at).ok()?))
}

/// The time step of a code that matches at `now` within one step either way, if any (the
/// caller refuses a step at or before the last one used: each code once per account).
pub fn matching_step(secret: &[u8], code: &str, now: i64) -> Option<i64> {
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret)?;
    let step = now.div_euclid(STEP);
    let mut found = None;
    // Every candidate is computed and compared in constant time, whichever matches.
    for s in [step - 1, step, step + 1] {
        let Ok(at) = u64::try_from(s * STEP) else {
            continue;
        };
        let expected = t.generate(at);
        if tsunagu_crypto::constant_time_eq(expected.as_bytes(), code.as_bytes()) && found.is_none()
        {
            found = Some(s);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1, secret "12345678901234567890", 8 digits: the 6-digit
    /// code is the last six digits of each.
    #[test]
    fn rfc6238_sha1_vectors() {
        let secret = b"12345678901234567890";
        for (t, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(code_at(secret, t).unwrap(), &eight[2..], "t = {t}");
        }
    }

    #[test]
    fn a_code_matches_one_step_either_way_and_no_further() {
        let secret = new_totp_secret().unwrap();
        let now = 1_800_000_015;
        let code = code_at(&secret, now).unwrap();
        assert_eq!(matching_step(&secret, &code, now), Some(now / STEP));
        assert_eq!(matching_step(&secret, &code, now + STEP), Some(now / STEP));
        assert_eq!(matching_step(&secret, &code, now - STEP), Some(now / STEP));
        assert_eq!(matching_step(&secret, &code, now + 2 * STEP), None);
        assert_eq!(matching_step(&secret, "12345", now), None);
        assert_eq!(matching_step(&secret, "12345a", now), None);
        assert_eq!(matching_step(&secret, "１２３４５６", now), None);
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let p = new_password().unwrap();
        let h = hash_password(&p).unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&p, &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password(&p, "not a phc string"));
        assert!(!verify_password(&p, decoy_hash()));
    }

    #[test]
    fn otpauth_uri_names_the_issuer_and_the_secret() {
        let uri = otpauth_uri("tsunagu city", "officer-1", b"12345678901234567890");
        assert_eq!(
            uri,
            "otpauth://totp/tsunagu%20city:officer-1?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=tsunagu%20city&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn grants_need_a_scope_only_for_operators() {
        assert!(valid_grant(Role::Operator, None).is_err());
        assert!(valid_grant(Role::Operator, Some(Scope::View)).is_ok());
        assert!(valid_grant(Role::Auditor, Some(Scope::View)).is_err());
        assert!(valid_grant(Role::SecurityOfficer, None).is_ok());
        assert!(Scope::Update.allows(Scope::View));
        assert!(!Scope::View.allows(Scope::Update));
        assert!(!Scope::Delete.allows(Scope::View));
    }
}
