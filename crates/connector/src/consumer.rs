//! The consumer's side: ask for a ticket, present it to the provider with proof of
//! possession, verify the payload's signature (decrypting it first if it is encrypted),
//! and send the receipt.

use crate::payload;
use crate::platform::{PlatformClient, TicketGrant, TicketRequest};
use crate::{ConnectorError, now, pop};
use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use tsunagu_core::Code;
use tsunagu_crypto::jwe::EncryptionKey;

/// A consumer connector.
pub struct Consumer {
    platform: Arc<PlatformClient>,
    encryption: Option<EncryptionKey>,
}

/// Data received from a provider, verified.
#[derive(Debug, Clone, Serialize)]
pub struct Fetched {
    pub data: Map<String, Value>,
    pub ticket_id: String,
    pub provider: String,
    pub basis: String,
    /// SHA-256 (hex) of the signed payload, as sent in the receipt.
    pub payload_sha256: String,
    /// The signed payload itself: evidence of who sent what.
    pub payload: String,
    /// The exchange's state after this side's receipt (`open` until the provider's arrives).
    pub exchange: Value,
}

impl Consumer {
    pub fn new(platform: Arc<PlatformClient>, encryption: Option<EncryptionKey>) -> Consumer {
        Consumer {
            platform,
            encryption,
        }
    }

    pub fn platform(&self) -> &PlatformClient {
        &self.platform
    }

    /// Asks for a ticket.
    pub async fn ticket(&self, request: &TicketRequest) -> Result<TicketGrant, ConnectorError> {
        self.platform.request_ticket(request).await
    }

    /// Presents a ticket to its provider and verifies the payload; then sends the receipt.
    /// A client on mutual TLS holds a ticket bound to its certificate: it presents it as
    /// `Bearer` on a connection made with that certificate, without a proof.
    pub async fn redeem(&self, grant: &TicketGrant) -> Result<Fetched, ConnectorError> {
        let identity = self.platform.identity();
        let request = self.platform.http().post(&grant.provider_endpoint);
        let request = if self.platform.mtls() {
            request.header("authorization", format!("Bearer {}", grant.ticket))
        } else {
            let proof = pop::proof(
                &identity.key,
                "POST",
                &grant.provider_endpoint,
                &grant.ticket,
                now(),
            )?;
            request
                .header("authorization", format!("DPoP {}", grant.ticket))
                .header("dpop", proof)
        };
        let response = request.json(&serde_json::json!({}));
        let answer = self.platform.send(response).await?;
        let signed = match (answer["payload"].as_str(), answer["payload_jwe"].as_str()) {
            (Some(jws), _) => jws.to_owned(),
            (None, Some(jwe)) => {
                let key = self.encryption.as_ref().ok_or_else(|| {
                    ConnectorError::invalid(
                        Code::PayloadInvalid,
                        "the payload is encrypted but this consumer has no encryption key",
                    )
                })?;
                let plain = tsunagu_crypto::jwe::decrypt(key, jwe).map_err(|e| {
                    ConnectorError::invalid(Code::PayloadInvalid, format!("payload: {e}"))
                })?;
                String::from_utf8(plain.to_vec()).map_err(|_| {
                    ConnectorError::invalid(
                        Code::PayloadInvalid,
                        "the decrypted payload is not text",
                    )
                })?
            }
            (None, None) => {
                return Err(ConnectorError::invalid(
                    Code::PayloadInvalid,
                    "the provider sent no payload",
                ));
            }
        };
        let keys = self.platform.service_keys(&grant.provider).await?;
        let claims = payload::verify(
            &signed,
            &keys.jwks,
            &grant.provider,
            &identity.service_id,
            &grant.ticket_id,
        )?;
        let digest = payload::digest(&signed);
        let exchange = self
            .platform
            .send_receipt(&grant.ticket_id, &digest)
            .await?;
        Ok(Fetched {
            data: claims.items,
            ticket_id: grant.ticket_id.clone(),
            provider: grant.provider.clone(),
            basis: grant.basis.clone(),
            payload_sha256: digest,
            payload: signed,
            exchange,
        })
    }

    /// Ticket, provider, verification, receipt.
    pub async fn fetch(&self, request: &TicketRequest) -> Result<Fetched, ConnectorError> {
        let grant = self.ticket(request).await?;
        self.redeem(&grant).await
    }
}
