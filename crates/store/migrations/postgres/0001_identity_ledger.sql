-- Identity (accounts, device credentials), single-use nonces, sessions, platform keys and
-- the transparency ledger. Times are Unix seconds.

CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    level          TEXT NOT NULL CHECK (level IN ('provisional', 'verified')),
    status         TEXT NOT NULL CHECK (status IN ('active', 'reproof_required')),
    -- AES-256-GCM sealed JSON of the four basic items; associated data: the account id.
    attributes     BYTEA,
    -- Keyed digest of the proofing certificate: finds the account when the same card
    -- enrolls another device, without storing the certificate.
    card_binding   TEXT UNIQUE,
    -- Issuer name (DER) and serial of the proofing certificate, to match CRL entries.
    card_issuer    BYTEA,
    card_serial    BYTEA,
    card_not_after BIGINT,
    -- Incremented by every update; updates compare and set it.
    version        BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX accounts_card ON accounts (card_serial, card_issuer);

CREATE TABLE devices (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    -- RFC 7638 thumbprint of the device key.
    jkt           TEXT NOT NULL UNIQUE,
    jwk           TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until  BIGINT,
    expires_at    BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX devices_account ON devices (account_id);

CREATE TABLE nonces (
    nonce      TEXT PRIMARY KEY,
    purpose    TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX nonces_expiry ON nonces (expires_at);

CREATE TABLE sessions (
    -- SHA-256 of the bearer token, hex: the token itself is never stored.
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    device_id  TEXT NOT NULL REFERENCES devices (id),
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX sessions_device ON sessions (device_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE platform_keys (
    name       TEXT PRIMARY KEY,
    purpose    TEXT NOT NULL,
    kid        TEXT NOT NULL,
    alg        TEXT NOT NULL,
    -- Sealed with the keyring; associated data: the key name.
    secret     BYTEA NOT NULL,
    active     BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE ledger_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    tree_size BIGINT NOT NULL
);
INSERT INTO ledger_head (id, tree_size) VALUES (1, 0);

CREATE TABLE ledger_leaves (
    idx        BIGINT PRIMARY KEY,
    leaf_hash  BYTEA NOT NULL,
    -- NULL once the retention period has passed: the hash stays, so proofs still verify.
    leaf_input BYTEA,
    created_at BIGINT NOT NULL
);
CREATE INDEX ledger_leaves_created ON ledger_leaves (created_at);

CREATE TABLE ledger_subjects (
    account_id TEXT NOT NULL,
    idx        BIGINT NOT NULL,
    PRIMARY KEY (account_id, idx)
);

CREATE TABLE ledger_sths (
    tree_size BIGINT PRIMARY KEY,
    root_hash BYTEA NOT NULL,
    timestamp BIGINT NOT NULL,
    key_id    TEXT NOT NULL,
    signature BYTEA NOT NULL
);
