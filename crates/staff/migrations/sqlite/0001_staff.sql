-- Operator staff (SPEC §8): accounts with an Argon2id password and a TOTP secret (sealed
-- with the keyring; associated data `staff-totp:<id>`), grants with an end date, sessions
-- bound to the client's address, and every look at a resident's data.
CREATE TABLE staff_accounts (
    id             TEXT PRIMARY KEY,
    display_name   TEXT NOT NULL,
    -- PHC string (argon2id).
    password_hash  TEXT NOT NULL,
    totp_secret    BLOB NOT NULL,
    -- The last TOTP time step used: a code of this step or an older one is a replay.
    totp_last_step INTEGER NOT NULL DEFAULT -1,
    failed_logins  INTEGER NOT NULL DEFAULT 0,
    locked_until   INTEGER,
    created_by     TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    last_login_at  INTEGER
);

CREATE TABLE staff_grants (
    id               TEXT PRIMARY KEY,
    staff_id         TEXT NOT NULL REFERENCES staff_accounts (id),
    role             TEXT NOT NULL CHECK (role IN ('security_officer', 'auditor', 'operator')),
    scope            TEXT CHECK (scope IN ('view', 'update', 'delete')),
    reason           TEXT NOT NULL,
    issued_by        TEXT NOT NULL,
    issued_at        INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    reconfirmed_at   INTEGER NOT NULL,
    withdrawn_at     INTEGER,
    withdrawn_by     TEXT,
    withdrawn_reason TEXT
);
CREATE INDEX staff_grants_staff ON staff_grants (staff_id);

CREATE TABLE staff_sessions (
    -- SHA-256 of the token, hex.
    token_hash TEXT PRIMARY KEY,
    staff_id   TEXT NOT NULL REFERENCES staff_accounts (id),
    -- The client's address at login: the session answers only there.
    client_ip  TEXT NOT NULL,
    -- The console's CSRF token (cookie sessions only).
    csrf       TEXT,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX staff_sessions_expiry ON staff_sessions (expires_at);

CREATE TABLE staff_views (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    staff_id   TEXT NOT NULL REFERENCES staff_accounts (id),
    account_id TEXT NOT NULL REFERENCES accounts (id),
    -- JSON array of the items shown.
    items      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    client_ip  TEXT NOT NULL,
    at         INTEGER NOT NULL
);
CREATE INDEX staff_views_at ON staff_views (at);
CREATE INDEX staff_views_account ON staff_views (account_id, at);
