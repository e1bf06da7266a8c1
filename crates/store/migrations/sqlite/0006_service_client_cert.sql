-- Mutual TLS (RFC 8705): the SHA-256 (base64url, `x5t#S256`) of the client certificate a
-- service registered; a connection made with that certificate authenticates as the service.
-- A certificate belongs to one service at most.
ALTER TABLE services ADD COLUMN client_cert_sha256 TEXT;
CREATE UNIQUE INDEX services_client_cert ON services (client_cert_sha256);
