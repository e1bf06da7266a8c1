//! The platform's API as a service sees it.

use crate::{ConnectorError, ServiceIdentity};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;
use std::time::{Duration, Instant};
use tsunagu_crypto::jwk::{JwkSet, PublicJwk};

/// How long other services' keys are trusted before they are fetched again.
const SERVICE_KEYS_TTL: Duration = Duration::from_secs(60);
/// Least time between two fetches of the platform's keys for an unknown `kid`.
const PLATFORM_KEYS_RETRY: Duration = Duration::from_secs(5);

/// A ticket request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TicketRequest {
    /// The consumer's own pairwise id for the resident.
    pub subject: String,
    pub purpose_id: String,
    pub items: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A ticket the platform issued.
#[derive(Debug, Clone, Deserialize)]
pub struct TicketGrant {
    pub ticket: String,
    pub ticket_id: String,
    pub provider_endpoint: String,
    pub provider: String,
    pub expires_at: i64,
    pub basis: String,
}

/// Another service's public keys.
#[derive(Debug, Clone)]
pub struct ServiceKeys {
    pub jwks: JwkSet,
    /// Its key for receiving encrypted payloads (`use: enc`), if it has one.
    pub encryption: Option<PublicJwk>,
}

/// `builder` trusting, beside the usual roots, the CA certificates (PEM) in `ca_file`.
pub fn with_ca(
    builder: reqwest::ClientBuilder,
    ca_file: &Path,
) -> Result<reqwest::ClientBuilder, ConnectorError> {
    let bad = |e: String| ConnectorError::Config(format!("ca_file {}: {e}", ca_file.display()));
    let pem = std::fs::read(ca_file).map_err(|e| bad(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(builder.tls_certs_merge(certs))
}

/// `builder` presenting the client certificate `cert` (PEM chain) with its key `key` (PEM)
/// on every TLS connection (mutual TLS, RFC 8705).
pub fn with_client_cert(
    builder: reqwest::ClientBuilder,
    cert: &Path,
    key: &Path,
) -> Result<reqwest::ClientBuilder, ConnectorError> {
    let read = |name: &str, p: &Path| {
        std::fs::read(p).map_err(|e| ConnectorError::Config(format!("{name} {}: {e}", p.display())))
    };
    let mut pem = read("tls_client_cert", cert)?;
    pem.push(b'\n');
    pem.extend(read("tls_client_key", key)?);
    let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
        ConnectorError::Config(format!(
            "tls_client_cert {} / tls_client_key {}: {e}",
            cert.display(),
            key.display()
        ))
    })?;
    Ok(builder.identity(identity))
}

/// How a [`PlatformClient`] connects.
#[derive(Debug, Clone, Default)]
pub struct ClientTls<'a> {
    /// CA certificates (PEM) to trust beside the usual roots.
    pub ca_file: Option<&'a Path>,
    /// The client certificate and key (PEM) to connect with: the platform then
    /// authenticates the service by its registered certificate, and no client assertions
    /// are sent.
    pub client_cert: Option<(&'a Path, &'a Path)>,
}

/// A client of the platform, authenticated as one service.
pub struct PlatformClient {
    base: String,
    identity: ServiceIdentity,
    /// Authenticated by the connection's client certificate rather than assertions.
    mtls: bool,
    http: reqwest::Client,
    platform_keys: RwLock<(JwkSet, Option<Instant>)>,
    service_keys: RwLock<HashMap<String, (ServiceKeys, Instant)>>,
}

impl PlatformClient {
    /// `base` is the platform's public URL (the audience of client assertions).
    pub fn new(base: &str, identity: ServiceIdentity) -> PlatformClient {
        PlatformClient::with_ca_file(base, identity, None).expect("a default HTTP client builds")
    }

    /// A client that also trusts the CA certificates (PEM) in `ca_file` (a platform or
    /// provider whose certificate a private CA issued).
    pub fn with_ca_file(
        base: &str,
        identity: ServiceIdentity,
        ca_file: Option<&Path>,
    ) -> Result<PlatformClient, ConnectorError> {
        PlatformClient::with_tls(
            base,
            identity,
            &ClientTls {
                ca_file,
                client_cert: None,
            },
        )
    }

    /// A client that connects as `tls` says.
    pub fn with_tls(
        base: &str,
        identity: ServiceIdentity,
        tls: &ClientTls<'_>,
    ) -> Result<PlatformClient, ConnectorError> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64);
        if let Some(ca_file) = tls.ca_file {
            builder = with_ca(builder, ca_file)?;
        }
        if let Some((cert, key)) = tls.client_cert {
            builder = with_client_cert(builder, cert, key)?;
        }
        let http = builder
            .build()
            .map_err(|e| ConnectorError::Config(format!("HTTP client: {e}")))?;
        Ok(PlatformClient {
            base: base.trim_end_matches('/').to_owned(),
            identity,
            mtls: tls.client_cert.is_some(),
            http,
            platform_keys: RwLock::new((JwkSet::default(), None)),
            service_keys: RwLock::new(HashMap::new()),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn identity(&self) -> &ServiceIdentity {
        &self.identity
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Whether this client authenticates by its client certificate (mutual TLS).
    pub fn mtls(&self) -> bool {
        self.mtls
    }

    /// Sends a request and turns a problem+json answer into [`ConnectorError::Refused`].
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, ConnectorError> {
        let response = request
            .send()
            .await
            .map_err(|e| ConnectorError::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| ConnectorError::Transport(e.to_string()))?;
        let value: Value = serde_json::from_slice(&body).map_err(|_| ConnectorError::Refused {
            status,
            code: "unexpected_answer".into(),
            detail: String::from_utf8_lossy(&body).chars().take(200).collect(),
        })?;
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            Err(ConnectorError::Refused {
                status,
                code: value["code"].as_str().unwrap_or("unknown").to_owned(),
                detail: value["detail"].as_str().unwrap_or_default().to_owned(),
            })
        }
    }

    fn authorized(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, ConnectorError> {
        if self.mtls {
            return Ok(request);
        }
        Ok(request.bearer_auth(self.identity.assertion(&self.base)?))
    }

    /// `POST /v1/exchange/tickets`.
    pub async fn request_ticket(&self, req: &TicketRequest) -> Result<TicketGrant, ConnectorError> {
        let request = self.authorized(
            self.http
                .post(format!("{}/v1/exchange/tickets", self.base))
                .json(req),
        )?;
        let value = self.send(request).await?;
        serde_json::from_value(value)
            .map_err(|e| ConnectorError::Transport(format!("ticket answer: {e}")))
    }

    /// `POST /v1/exchange/receipts`.
    pub async fn send_receipt(
        &self,
        ticket_id: &str,
        payload_sha256: &str,
    ) -> Result<Value, ConnectorError> {
        let request = self.authorized(
            self.http
                .post(format!("{}/v1/exchange/receipts", self.base))
                .json(&json!({"ticket_id": ticket_id, "payload_sha256": payload_sha256})),
        )?;
        self.send(request).await
    }

    /// `GET /v1/exchange/consents?since=`.
    pub async fn consent_feed(&self, since: i64) -> Result<Value, ConnectorError> {
        let request = self.authorized(
            self.http
                .get(format!("{}/v1/exchange/consents?since={since}", self.base)),
        )?;
        self.send(request).await
    }

    /// The platform key `kid` (from `/.well-known/jwks.json`, cached; fetched again when an
    /// unknown `kid` appears, at most every few seconds).
    pub async fn platform_key(&self, kid: &str) -> Result<PublicJwk, ConnectorError> {
        if let Some(key) = self.platform_keys.read().expect("keys lock").0.find(kid) {
            return Ok(key.clone());
        }
        let recently = self
            .platform_keys
            .read()
            .expect("keys lock")
            .1
            .is_some_and(|at| at.elapsed() < PLATFORM_KEYS_RETRY);
        if !recently {
            let value = self
                .send(
                    self.http
                        .get(format!("{}/.well-known/jwks.json", self.base)),
                )
                .await?;
            let set = JwkSet::from_value(&value)
                .map_err(|e| ConnectorError::Transport(format!("platform JWKS: {e}")))?;
            *self.platform_keys.write().expect("keys lock") = (set, Some(Instant::now()));
        }
        self.platform_keys
            .read()
            .expect("keys lock")
            .0
            .find(kid)
            .cloned()
            .ok_or_else(|| {
                ConnectorError::invalid(
                    tsunagu_core::Code::TicketInvalid,
                    format!("no platform key `{kid}`"),
                )
            })
    }

    /// Another service's keys (from `GET /v1/services/{id}`, cached).
    pub async fn service_keys(&self, service_id: &str) -> Result<ServiceKeys, ConnectorError> {
        if let Some((keys, at)) = self.service_keys.read().expect("keys lock").get(service_id)
            && at.elapsed() < SERVICE_KEYS_TTL
        {
            return Ok(keys.clone());
        }
        let value = self
            .send(
                self.http
                    .get(format!("{}/v1/services/{service_id}", self.base)),
            )
            .await?;
        let jwks = JwkSet::from_value(&value["jwks"])
            .map_err(|e| ConnectorError::Transport(format!("service {service_id} JWKS: {e}")))?;
        let encryption = jwks
            .keys
            .iter()
            .find(|k| k.use_.as_deref() == Some("enc"))
            .cloned();
        let keys = ServiceKeys { jwks, encryption };
        self.service_keys
            .write()
            .expect("keys lock")
            .insert(service_id.to_owned(), (keys.clone(), Instant::now()));
        Ok(keys)
    }
}
