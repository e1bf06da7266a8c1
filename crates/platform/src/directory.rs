//! The directory of registered services: their applications, keys and purposes, parsed once
//! and cached for a moment. Statuses that decide anything (tickets, tokens) are always read
//! fresh from the store; the directory serves what changes rarely and is checked anyway.

use crate::services::ServiceApplication;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tsunagu_core::service::Purpose;
use tsunagu_core::{PurposeId, ServiceId};
use tsunagu_crypto::jwk::{JwkSet, KeyMaterial, PublicJwk};
use tsunagu_store::{PurposeRow, ServiceRow, Store, StoreError};

/// How long a cached service definition is trusted before it is read again.
const CACHE_TTL: Duration = Duration::from_secs(2);

/// A registered service as the platform uses it.
#[derive(Debug)]
pub struct ServiceEntry {
    pub row: ServiceRow,
    pub application: ServiceApplication,
    pub purposes: Vec<PurposeEntry>,
    fetched: Instant,
}

/// One of a consumer's purposes.
#[derive(Debug, Clone)]
pub struct PurposeEntry {
    pub row: PurposeRow,
    pub purpose: Purpose,
}

impl ServiceEntry {
    pub fn id(&self) -> &ServiceId {
        &self.row.id
    }

    /// The service's keys.
    pub fn jwks(&self) -> &JwkSet {
        &self.application.jwks
    }

    pub fn purpose(&self, id: &str) -> Option<&PurposeEntry> {
        self.purposes.iter().find(|p| p.row.purpose_id == id)
    }

    /// The purpose with this id.
    pub fn purpose_by_id(&self, id: &PurposeId) -> Option<&PurposeEntry> {
        self.purpose(id.as_str())
    }

    /// The offered item's Japanese title, or the item name.
    pub fn item_title(&self, item: &str) -> String {
        self.application
            .offers
            .iter()
            .find(|o| o.item == item)
            .map(|o| o.title_ja.clone())
            .unwrap_or_else(|| item.to_owned())
    }

    /// The key of this service's JWKS that may sign an assertion `iss` claims to be from
    /// this service, with header `kid`: a P-256 key not registered for encryption, named by
    /// `kid`, or the only such key when there is no `kid`. The one rule for every way a
    /// service authenticates by signature (ticket requests, token requests, the console).
    pub fn signing_key(&self, iss: &str, kid: Option<&str>) -> Option<PublicJwk> {
        if iss != self.row.id.as_str() {
            return None;
        }
        match kid {
            Some(kid) => self.jwks().find(kid).filter(|k| may_sign(k)).cloned(),
            None => {
                let mut candidates = self.jwks().keys.iter().filter(|k| may_sign(k));
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => Some(only.clone()),
                    _ => None,
                }
            }
        }
    }
}

/// Whether a key of a service's JWKS may sign for it: a P-256 key not registered for
/// encryption. Applications and registration updates must keep one.
pub fn may_sign(key: &PublicJwk) -> bool {
    matches!(key.material, KeyMaterial::P256 { .. }) && key.use_.as_deref() != Some("enc")
}

/// A cache of service definitions (applications, keys, purposes).
pub struct Directory {
    store: Arc<dyn Store>,
    entries: RwLock<HashMap<ServiceId, Arc<ServiceEntry>>>,
}

impl Directory {
    pub fn new(store: Arc<dyn Store>) -> Directory {
        Directory {
            store,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The service, from the cache or the store.
    pub async fn get(&self, id: &ServiceId) -> Result<Option<Arc<ServiceEntry>>, StoreError> {
        if let Some(entry) = self.entries.read().expect("directory lock").get(id)
            && entry.fetched.elapsed() < CACHE_TTL
        {
            return Ok(Some(entry.clone()));
        }
        let Some(row) = self.store.service(id).await? else {
            return Ok(None);
        };
        let application: ServiceApplication = serde_json::from_str(&row.application)
            .map_err(|e| StoreError::Corrupt(format!("service {id} application: {e}")))?;
        let purposes = self
            .store
            .purposes_of(id)
            .await?
            .into_iter()
            .map(|row| {
                let purpose: Purpose = serde_json::from_str(&row.definition)
                    .map_err(|e| StoreError::Corrupt(format!("purpose {}: {e}", row.purpose_id)))?;
                Ok(PurposeEntry { row, purpose })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let entry = Arc::new(ServiceEntry {
            row,
            application,
            purposes,
            fetched: Instant::now(),
        });
        self.entries
            .write()
            .expect("directory lock")
            .insert(id.clone(), entry.clone());
        Ok(Some(entry))
    }

    /// The service with this id given as text (from a request).
    pub async fn find(&self, id: &str) -> Result<Option<Arc<ServiceEntry>>, StoreError> {
        self.get(&ServiceId::from(id)).await
    }

    /// The service that registered the client certificate with this `x5t#S256` (mutual
    /// TLS), checked against the service's current row.
    pub async fn by_client_cert(
        &self,
        x5t_s256: &str,
    ) -> Result<Option<Arc<ServiceEntry>>, StoreError> {
        let cached = self
            .entries
            .read()
            .expect("directory lock")
            .values()
            .filter(|e| {
                e.row.client_cert_sha256.as_deref() == Some(x5t_s256)
                    && e.fetched.elapsed() < CACHE_TTL
            })
            // Two cached services with the certificate: it moved; the fresher read wins.
            .max_by_key(|e| e.fetched)
            .cloned();
        if cached.is_some() {
            return Ok(cached);
        }
        let Some(id) = self.store.service_by_client_cert(x5t_s256).await? else {
            return Ok(None);
        };
        Ok(self
            .get(&id)
            .await?
            .filter(|e| e.row.client_cert_sha256.as_deref() == Some(x5t_s256)))
    }

    /// Forgets a service (after this process changed it).
    pub fn invalidate(&self, id: &ServiceId) {
        self.entries.write().expect("directory lock").remove(id);
    }
}
