-- Identity (accounts, device credentials), single-use nonces, sessions, platform keys and
-- the transparency ledger. Times are Unix seconds.

CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    level          TEXT NOT NULL CHECK (level IN ('provisional', 'verified')),
    status         TEXT NOT NULL CHECK (status IN ('active', 'reproof_required')),
    -- AES-256-GCM sealed JSON of the four basic items; associated data: the account id.
    attributes     BLOB,
    -- Keyed digest of the proofing certificate: finds the account when the same card
    -- enrolls another device, without storing the certificate.
    card_binding   TEXT UNIQUE,
    -- Issuer name (DER) and serial of the proofing certificate, to match CRL entries.
    card_issuer    BLOB,
    card_serial    BLOB,
    card_not_after INTEGER,
    -- Incremented by every update; updates compare and set it.
    version        INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX accounts_card ON accounts (card_serial, card_issuer);

CREATE TABLE devices (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    -- RFC 7638 thumbprint of the device key.
    jkt           TEXT NOT NULL UNIQUE,
    jwk           TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until  INTEGER,
    expires_at    INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    revoked_at    INTEGER
);
CREATE INDEX devices_account ON devices (account_id);

CREATE TABLE nonces (
    nonce      TEXT PRIMARY KEY,
    purpose    TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX nonces_expiry ON nonces (expires_at);

CREATE TABLE sessions (
    -- SHA-256 of the bearer token, hex: the token itself is never stored.
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    device_id  TEXT NOT NULL REFERENCES devices (id),
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX sessions_device ON sessions (device_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE platform_keys (
    name       TEXT PRIMARY KEY,
    purpose    TEXT NOT NULL,
    kid        TEXT NOT NULL,
    alg        TEXT NOT NULL,
    -- Sealed with the keyring; associated data: the key name.
    secret     BLOB NOT NULL,
    active     INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE ledger_head (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    tree_size INTEGER NOT NULL
);
INSERT INTO ledger_head (id, tree_size) VALUES (1, 0);

CREATE TABLE ledger_leaves (
    idx        INTEGER PRIMARY KEY,
    leaf_hash  BLOB NOT NULL,
    -- NULL once the retention period has passed: the hash stays, so proofs still verify.
    leaf_input BLOB,
    created_at INTEGER NOT NULL
);
CREATE INDEX ledger_leaves_created ON ledger_leaves (created_at);

-- Which leaves concern which account (the resident's history). Clustered on the key:
-- one B-tree instead of a table and an index.
CREATE TABLE ledger_subjects (
    account_id TEXT NOT NULL,
    idx        INTEGER NOT NULL,
    PRIMARY KEY (account_id, idx)
) WITHOUT ROWID;

CREATE TABLE ledger_sths (
    tree_size INTEGER PRIMARY KEY,
    root_hash BLOB NOT NULL,
    timestamp INTEGER NOT NULL,
    key_id    TEXT NOT NULL,
    signature BLOB NOT NULL
);
