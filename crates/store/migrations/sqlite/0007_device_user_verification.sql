-- WebAuthn user verification for the browser wallet (issue 9, defect 6): a device may be
-- registered with a platform credential; its logins then need an assertion in which the
-- authenticator verified the user. The ID is base64url, the key an ES256 JWK (JSON text),
-- the counter the last one seen (0 for authenticators that keep none).
ALTER TABLE devices ADD COLUMN uv_credential_id TEXT;
ALTER TABLE devices ADD COLUMN uv_public_key TEXT;
ALTER TABLE devices ADD COLUMN uv_sign_count BIGINT NOT NULL DEFAULT 0;
-- A credential belongs to one device (WebAuthn §7.1: a credential ID registered once).
CREATE UNIQUE INDEX devices_uv_credential ON devices (uv_credential_id);
