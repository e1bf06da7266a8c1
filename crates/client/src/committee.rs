//! A committee member's side: the vote a member signs with their own key.

use serde_json::json;
use std::path::Path;
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_crypto::{jcs, jws, random};

/// A committee member: the id `[governance] members` knows, and the key that signs votes.
pub struct Member {
    pub id: String,
    pub key: SigningKey,
}

impl Member {
    /// Reads a member's key (PKCS#8 PEM, P-256, as `tsunagu admin keygen` writes it).
    pub fn load(id: &str, key_file: &Path) -> Result<Member, String> {
        let pem = std::fs::read_to_string(key_file)
            .map_err(|e| format!("{}: {e}", key_file.display()))?;
        let key = SigningKey::from_pkcs8_pem(Alg::Es256, &pem)
            .map_err(|e| format!("{}: not a PKCS#8 P-256 key ({e})", key_file.display()))?;
        Ok(Member {
            id: id.to_owned(),
            key,
        })
    }

    /// Parses `ID=KEY.pem` (a command-line `--member`) and reads the key.
    pub fn from_spec(spec: &str) -> Result<Member, String> {
        let (id, path) = spec
            .split_once('=')
            .filter(|(id, path)| !id.is_empty() && !path.is_empty())
            .ok_or_else(|| format!("--member `{spec}`: expected ID=KEY.pem"))?;
        Member::load(id, Path::new(path)).map_err(|e| format!("--member {id}: {e}"))
    }

    /// A signed vote (`vote_jws`) on `service`: `approve`, `reject`, `suspend` or
    /// `reinstate`, the key id naming the member.
    pub fn sign_vote(
        &self,
        service: &str,
        decision: &str,
        comment: &str,
        overrides: &[String],
    ) -> Result<String, String> {
        let mut header = serde_json::Map::new();
        header.insert("kid".into(), json!(self.id));
        header.insert("typ".into(), json!("tsunagu-vote+jwt"));
        let mut payload = json!({
            "service_id": service,
            "decision": decision,
            "comment": comment,
            "issued_at": now(),
            "nonce": random::token(16).map_err(|e| e.to_string())?,
        });
        // The lint error findings an approval overrides, by code.
        if !overrides.is_empty() {
            payload["override"] = json!(overrides);
        }
        let bytes = jcs::to_vec(&payload).map_err(|e| e.to_string())?;
        jws::sign_with_header(&self.key, header, &bytes).map_err(|e| e.to_string())
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vote_names_its_member_and_is_signed_by_their_key() {
        let member = Member {
            id: "chair".into(),
            key: SigningKey::generate(Alg::Es256).unwrap(),
        };
        let vote = member.sign_vote("svc_x", "approve", "ok", &[]).unwrap();
        let token = jws::parse(&vote).unwrap();
        token.verify(member.key.public_jwk()).unwrap();
        assert_eq!(token.kid.as_deref(), Some("chair"));
        let payload: serde_json::Value = token.payload_as().unwrap();
        assert_eq!(payload["service_id"], "svc_x");
        assert_eq!(payload["decision"], "approve");
        assert!(
            payload.get("override").is_none(),
            "nothing overridden: no member"
        );
        let over = member
            .sign_vote("svc_x", "approve", "", &["no_retention".into()])
            .unwrap();
        let payload: serde_json::Value = jws::parse(&over).unwrap().payload_as().unwrap();
        assert_eq!(payload["override"], serde_json::json!(["no_retention"]));
        assert!(Member::from_spec("chair").is_err());
        assert!(Member::from_spec("=x.pem").is_err());
    }
}
