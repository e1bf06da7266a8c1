//! Staff credentials and roles: Argon2id passwords (the `argon2` crate's defaults, PHC
//! strings), TOTP codes (`tsunagu_crypto::totp`: RFC 6238, SHA-1, 6 digits, 30-second steps,
//! one step of skew either way), and what each role and scope allows.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};
use tsunagu_crypto::random;
pub use tsunagu_crypto::totp::{
    DIGITS, STEP, base32, code_at, from_base32, matching_step, new_secret as new_totp_secret,
    otpauth_uri,
};

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

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1, secret "12345678901234567890", 8 digits: the 6-digit
    /// code is the last six digits of each.
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
