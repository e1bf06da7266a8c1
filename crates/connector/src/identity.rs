//! A service's identity: its id at the platform and its ES256 signing key.

use crate::{ConnectorError, now};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use tsunagu_crypto::keys::{Alg, SigningKey};
use tsunagu_crypto::{jws, random};

/// A service's id and signing key (the key is in the JWKS it registered).
#[derive(Clone)]
pub struct ServiceIdentity {
    pub service_id: String,
    pub key: Arc<SigningKey>,
}

impl std::fmt::Debug for ServiceIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceIdentity")
            .field("service_id", &self.service_id)
            .field("kid", &self.key.kid())
            .finish()
    }
}

impl ServiceIdentity {
    pub fn new(service_id: &str, key: SigningKey) -> ServiceIdentity {
        ServiceIdentity {
            service_id: service_id.to_owned(),
            key: Arc::new(key),
        }
    }

    /// Loads the key from a PKCS#8 PEM file.
    pub fn load(service_id: &str, key_file: &Path) -> Result<ServiceIdentity, ConnectorError> {
        let pem = std::fs::read_to_string(key_file)
            .map_err(|e| ConnectorError::Config(format!("{}: {e}", key_file.display())))?;
        let key = SigningKey::from_pkcs8_pem(Alg::Es256, &pem)
            .map_err(|e| ConnectorError::Config(format!("{}: {e}", key_file.display())))?;
        Ok(ServiceIdentity::new(service_id, key))
    }

    /// A client assertion for `audience` (the platform's public URL): `iss` = `sub` = the
    /// service id, a fresh `jti`, valid for 60 seconds.
    pub fn assertion(&self, audience: &str) -> Result<String, ConnectorError> {
        let t = now();
        let jti = random::token(16).map_err(|e| ConnectorError::Config(e.to_string()))?;
        jws::sign_json(
            &self.key,
            Some("JWT"),
            &json!({
                "iss": self.service_id,
                "sub": self.service_id,
                "aud": audience,
                "jti": jti,
                "iat": t,
                "exp": t + 60,
            }),
        )
        .map_err(|e| ConnectorError::Config(e.to_string()))
    }
}
