//! The provider's side: redeem a ticket in front of an existing API.
//!
//! `POST <endpoint>` with `Authorization: DPoP <ticket>` and `DPoP: <proof>`: the ticket is
//! verified offline with the platform's keys, the proof against the ticket's `cnf.jkt`, both
//! are used once. A ticket bound to a client certificate (`cnf.x5t#S256`, when the consumer
//! authenticated to the platform by mutual TLS) comes as `Authorization: Bearer <ticket>` on
//! a connection made with that certificate (RFC 8705), and needs no proof. The upstream API is asked for the ticket's items about the ticket's
//! subject (the provider's own pairwise id for the resident); only those items are signed
//! into the payload, encrypted to the consumer if it registered an encryption key; the
//! receipt goes to the platform.

use crate::payload::{self, PayloadClaims};
use crate::platform::PlatformClient;
use crate::{ConnectorError, now, pop, ticket};
use async_trait::async_trait;
use axum::Extension;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tsunagu_core::Code;
use tsunagu_tls::ClientCert;

/// What the provider asks its own system for.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamRequest {
    /// The provider's pairwise id for the resident.
    pub subject: String,
    pub items: Vec<String>,
    pub purpose: String,
    pub consumer: String,
    /// `consent:<id>` or `rule:<purpose_id>`.
    pub basis: String,
    pub ticket_id: String,
}

/// The provider's existing API.
#[async_trait]
pub trait Upstream: Send + Sync {
    /// The items' values for the subject (items it does not hold are simply absent).
    async fn fetch(&self, request: &UpstreamRequest) -> Result<Map<String, Value>, ConnectorError>;
}

/// An upstream reached over HTTP: `POST <url>` with the [`UpstreamRequest`] as JSON,
/// answering `{"data": {item: value, …}}`.
pub struct HttpUpstream {
    url: String,
    http: reqwest::Client,
}

impl HttpUpstream {
    pub fn new(url: &str) -> HttpUpstream {
        HttpUpstream {
            url: url.to_owned(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(20))
                .build()
                .expect("a default HTTP client builds"),
        }
    }
}

#[async_trait]
impl Upstream for HttpUpstream {
    async fn fetch(&self, request: &UpstreamRequest) -> Result<Map<String, Value>, ConnectorError> {
        let response = self
            .http
            .post(&self.url)
            .json(request)
            .send()
            .await
            .map_err(|e| ConnectorError::Upstream(e.to_string()))?;
        if !response.status().is_success() {
            return Err(ConnectorError::Upstream(format!(
                "HTTP {}",
                response.status()
            )));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|e| ConnectorError::Upstream(format!("answer: {e}")))?;
        match body.get("data") {
            Some(Value::Object(data)) => Ok(data.clone()),
            _ => Err(ConnectorError::Upstream(
                "the answer has no `data` object".into(),
            )),
        }
    }
}

/// A provider connector.
pub struct Provider {
    platform: Arc<PlatformClient>,
    upstream: Arc<dyn Upstream>,
    /// The endpoint as registered with the platform (what proofs name as `htu`).
    endpoint: String,
    /// Encrypt payloads to consumers that registered an encryption key.
    encrypt: bool,
    /// Ticket and proof `jti`s already used, until they expire.
    used: Mutex<HashMap<String, i64>>,
}

/// What a redemption returns to the consumer.
#[derive(Debug, Clone, Serialize)]
pub struct Redeemed {
    /// The signed payload, when not encrypted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The signed payload encrypted to the consumer (JWE ECDH-ES + A256GCM, `cty: JWT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_jwe: Option<String>,
    pub ticket_id: String,
}

impl Provider {
    pub fn new(
        platform: Arc<PlatformClient>,
        upstream: Arc<dyn Upstream>,
        endpoint: &str,
        encrypt: bool,
    ) -> Provider {
        Provider {
            platform,
            upstream,
            endpoint: endpoint.to_owned(),
            encrypt,
            used: Mutex::new(HashMap::new()),
        }
    }

    fn use_once(&self, key: String, until: i64) -> Result<(), ConnectorError> {
        let mut used = self.used.lock().expect("replay lock");
        let t = now();
        used.retain(|_, exp| *exp + pop::WINDOW >= t);
        if used.insert(key, until).is_some() {
            return Err(ConnectorError::invalid(
                Code::Replayed,
                "this ticket or proof was already used",
            ));
        }
        Ok(())
    }

    /// Redeems a ticket (see the module documentation). `client_cert` is the `x5t#S256` of
    /// the client certificate the request's connection was made with, if any.
    pub async fn redeem(
        &self,
        authorization: Option<&str>,
        proof: Option<&str>,
        client_cert: Option<&str>,
    ) -> Result<Redeemed, ConnectorError> {
        let (scheme, ticket) = authorization
            .and_then(|a| a.split_once(' '))
            .map(|(scheme, ticket)| (scheme.to_ascii_lowercase(), ticket.trim()))
            .filter(|(scheme, _)| scheme == "dpop" || scheme == "bearer")
            .ok_or_else(|| {
                ConnectorError::invalid(
                    Code::TicketInvalid,
                    "present the ticket as `Authorization: DPoP <ticket>` (or `Bearer` for a \
                     ticket bound to a client certificate)",
                )
            })?;
        let t = now();
        let kid = ticket::key_id(ticket)?;
        let key = self.platform.platform_key(&kid).await?;
        let identity = self.platform.identity();
        let claims = ticket::verify(ticket, &key, self.platform.base(), &identity.service_id, t)?;
        match (&claims.cnf.jkt, &claims.cnf.x5t_s256) {
            (Some(jkt), _) => {
                if scheme != "dpop" {
                    return Err(ConnectorError::invalid(
                        Code::TicketInvalid,
                        "this ticket is bound to a key: present it as `Authorization: DPoP`",
                    ));
                }
                let proof = proof.ok_or_else(|| {
                    ConnectorError::invalid(Code::ProofInvalid, "a `DPoP` proof header is required")
                })?;
                let verified = pop::verify(proof, "POST", &self.endpoint, ticket, jkt, t)?;
                self.use_once(format!("proof:{}", verified.jti), t + pop::WINDOW)?;
            }
            (None, Some(x5t_s256)) => {
                if scheme != "bearer" {
                    return Err(ConnectorError::invalid(
                        Code::TicketInvalid,
                        "this ticket is bound to a client certificate: present it as \
                         `Authorization: Bearer` on a connection made with that certificate",
                    ));
                }
                if client_cert != Some(x5t_s256.as_str()) {
                    return Err(ConnectorError::invalid(
                        Code::ProofInvalid,
                        "this ticket is bound to a client certificate (cnf.x5t#S256) and the \
                         connection was not made with it",
                    ));
                }
            }
            (None, None) => return Err(ConnectorError::invalid(Code::TicketInvalid, "unbound")),
        }
        self.use_once(format!("ticket:{}", claims.jti), claims.exp)?;

        let request = UpstreamRequest {
            subject: claims.sub.clone(),
            items: claims.items.clone(),
            purpose: claims.purpose.clone(),
            consumer: claims.cns.clone(),
            basis: claims.basis.clone(),
            ticket_id: claims.jti.clone(),
        };
        let data = self.upstream.fetch(&request).await?;
        // Never more than the ticket allows, whatever the upstream returns.
        let items: Map<String, Value> = data
            .into_iter()
            .filter(|(name, _)| claims.items.contains(name))
            .collect();
        let signed = payload::sign(
            &identity.key,
            &PayloadClaims {
                iss: identity.service_id.clone(),
                aud: claims.cns.clone(),
                ticket: claims.jti.clone(),
                purpose: claims.purpose.clone(),
                items,
                iat: t,
            },
        )?;
        let digest = payload::digest(&signed);
        let platform = self.platform.clone();
        let ticket_id = claims.jti.clone();
        tokio::spawn(async move {
            if let Err(e) = platform.send_receipt(&ticket_id, &digest).await {
                tracing::error!(ticket = %ticket_id, error = %e, "the provider's receipt was not accepted");
            }
        });
        let encryption = if self.encrypt {
            self.platform.service_keys(&claims.cns).await?.encryption
        } else {
            None
        };
        Ok(match encryption {
            Some(key) => Redeemed {
                payload: None,
                payload_jwe: Some(
                    tsunagu_crypto::jwe::encrypt(&key, signed.as_bytes(), Some("JWT"))
                        .map_err(|e| ConnectorError::Config(e.to_string()))?,
                ),
                ticket_id: claims.jti,
            },
            None => Redeemed {
                payload: Some(signed),
                payload_jwe: None,
                ticket_id: claims.jti,
            },
        })
    }
}

/// problem+json for a connector error.
pub fn problem(e: &ConnectorError) -> Response {
    let (code, detail) = match e {
        ConnectorError::Invalid { code, detail } => (*code, detail.clone()),
        ConnectorError::Refused { code, detail, .. } => (
            Code::parse(code).unwrap_or(Code::InternalError),
            detail.clone(),
        ),
        ConnectorError::Upstream(d) => (Code::UpstreamFailed, d.clone()),
        ConnectorError::Transport(d) => (Code::Unavailable, d.clone()),
        ConnectorError::Config(d) => (Code::InternalError, d.clone()),
    };
    let body = json!({
        "type": format!("urn:tsunagu:problem:{}", code.as_str()),
        "title": code.title(),
        "status": code.http_status(),
        "detail": detail,
        "code": code.as_str(),
    });
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

/// The HTTP face: `POST path` redeems.
pub fn router(provider: Arc<Provider>, path: &str) -> axum::Router {
    axum::Router::new().route(
        path,
        axum::routing::post(
            move |cert: Option<Extension<ClientCert>>, headers: HeaderMap| {
                let provider = provider.clone();
                async move {
                    let authorization = headers
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok());
                    let proof = headers.get("dpop").and_then(|v| v.to_str().ok());
                    let cert = cert.as_ref().map(|Extension(c)| c.x5t_s256.as_str());
                    match provider.redeem(authorization, proof, cert).await {
                        Ok(redeemed) => (StatusCode::OK, axum::Json(redeemed)).into_response(),
                        Err(e) => {
                            tracing::warn!(error = %e, "a ticket was refused");
                            problem(&e)
                        }
                    }
                }
            },
        ),
    )
}
