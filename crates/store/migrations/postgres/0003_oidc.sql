-- The OpenID Connect provider: pending authorization requests, grants (what a resident let a
-- client have), authorization codes, and access and refresh tokens. Codes and tokens are
-- bearer secrets: only their SHA-256 (hex) is stored, never the value itself.

-- SHA-256 (hex) of the client secret of a service that authenticates with
-- client_secret_basic; NULL for services that sign client assertions with their JWKS.
ALTER TABLE services ADD COLUMN client_secret_hash TEXT;

-- Authorization requests between /oauth2/authorize (or a pushed authorization request) and
-- the resident's login.
CREATE TABLE oauth_requests (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL REFERENCES services (id),
    -- The validated request parameters (JSON).
    params      TEXT NOT NULL,
    -- Whether the client pushed the request (RFC 9126) rather than passing it in the URL.
    pushed      BOOLEAN NOT NULL,
    -- The nonce of the resident's login that answers this request: set when the login
    -- starts, it finds the request again when the signed login arrives.
    login_nonce TEXT,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX oauth_requests_login_nonce ON oauth_requests (login_nonce) WHERE login_nonce IS NOT NULL;
CREATE INDEX oauth_requests_expiry ON oauth_requests (expires_at);

-- What a resident allowed a client at one login: the scope and the items it may read.
-- Codes and tokens hang off a grant; revoking the grant revokes them all. Kept after
-- revocation, for the resident's view.
CREATE TABLE oauth_grants (
    id             TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES services (id),
    account_id     TEXT NOT NULL REFERENCES accounts (id),
    -- The device the resident logged in with.
    device_id      TEXT NOT NULL,
    scope          TEXT NOT NULL,
    -- The items (claims) released to the client (JSON array).
    items          TEXT NOT NULL,
    -- The consent the items were released under, when there is one.
    consent_id     TEXT,
    -- When the resident authenticated (the ID token's auth_time).
    auth_time      BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    -- Set once (by the resident, or on a replayed code or refresh token); revoking again
    -- keeps the first time and reason.
    revoked_at     BIGINT,
    revoked_reason TEXT
);
CREATE INDEX oauth_grants_account ON oauth_grants (account_id);
CREATE INDEX oauth_grants_client ON oauth_grants (client_id);

-- Authorization codes: single use, short-lived.
CREATE TABLE oauth_codes (
    -- SHA-256 of the code, hex.
    code_hash      TEXT PRIMARY KEY,
    grant_id       TEXT NOT NULL REFERENCES oauth_grants (id),
    -- Checked again at the token endpoint.
    redirect_uri   TEXT NOT NULL,
    -- PKCE S256 challenge.
    code_challenge TEXT NOT NULL,
    -- The client's nonce, echoed in the ID token.
    nonce          TEXT,
    -- Thumbprint of the DPoP key the code is bound to, if any.
    dpop_jkt       TEXT,
    expires_at     BIGINT NOT NULL,
    -- Set by the one redemption; a second one finds it set (a replay).
    used_at        BIGINT,
    created_at     BIGINT NOT NULL
);
CREATE INDEX oauth_codes_expiry ON oauth_codes (expires_at);

-- Access and refresh tokens. A refresh token is used once: using it issues a new one.
CREATE TABLE oauth_tokens (
    -- SHA-256 of the token, hex.
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES oauth_grants (id),
    kind       TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    scope      TEXT NOT NULL,
    -- Thumbprint of the DPoP key the token is bound to, if any.
    dpop_jkt   TEXT,
    expires_at BIGINT NOT NULL,
    -- Refresh tokens only: set by the one rotation.
    used_at    BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX oauth_tokens_grant ON oauth_tokens (grant_id);
CREATE INDEX oauth_tokens_expiry ON oauth_tokens (expires_at);
