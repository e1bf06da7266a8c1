-- Services and their review, purposes, committee votes; consents, their feed and the
-- residents' signed-request nonces; pairwise subjects; tickets and receipts; alerts.

CREATE TABLE services (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    organization TEXT NOT NULL,
    contact      TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('consumer', 'provider', 'both')),
    status       TEXT NOT NULL CHECK (status IN ('pending_review', 'approved', 'rejected', 'suspended')),
    -- The application as accepted (JSON), its JWKS, its ticket endpoint, its lint findings.
    application  TEXT NOT NULL,
    jwks         TEXT NOT NULL,
    endpoint     TEXT,
    lint         TEXT NOT NULL,
    -- Voting round: incremented by every status change; votes count within a round.
    round        BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX services_status ON services (status);

CREATE TABLE purposes (
    consumer_id  TEXT NOT NULL REFERENCES services (id),
    purpose_id   TEXT NOT NULL,
    provider_id  TEXT NOT NULL,
    legal_basis  TEXT NOT NULL CHECK (legal_basis IN ('consent', 'vital_interest', 'statutory')),
    items        TEXT NOT NULL,
    -- The purpose as applied for (JSON) and the SHA-256 of the terms residents agree to.
    definition   TEXT NOT NULL,
    terms_sha256 TEXT NOT NULL,
    PRIMARY KEY (consumer_id, purpose_id)
);
CREATE INDEX purposes_provider ON purposes (provider_id);

CREATE TABLE votes (
    member_id  TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    service_id TEXT NOT NULL REFERENCES services (id),
    round      BIGINT NOT NULL,
    decision   TEXT NOT NULL,
    comment    TEXT NOT NULL,
    issued_at  BIGINT NOT NULL,
    jws        TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (member_id, nonce)
);
CREATE INDEX votes_service ON votes (service_id, round);

CREATE TABLE consents (
    id           TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    consumer_id  TEXT NOT NULL,
    provider_id  TEXT NOT NULL,
    purpose_id   TEXT NOT NULL,
    -- 1 for a resident's first consent to a purpose, then one more for each new one: the
    -- newest decides.
    generation   BIGINT NOT NULL,
    items        TEXT NOT NULL,
    expires_at   BIGINT NOT NULL,
    terms_sha256 TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('active', 'revoked', 'superseded', 'expired')),
    -- The signed consent as received: the record.
    jws          TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    version      BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX consents_lookup ON consents (account_id, consumer_id, purpose_id, generation);
CREATE INDEX consents_expiry ON consents (status, expires_at);
-- At most one active consent per resident, consumer and purpose.
CREATE UNIQUE INDEX consents_one_active ON consents (account_id, consumer_id, purpose_id) WHERE status = 'active';

-- The signed changes (revocations, expiry changes) as received.
CREATE TABLE consent_changes (
    consent_id TEXT NOT NULL REFERENCES consents (id),
    action     TEXT NOT NULL,
    expires_at BIGINT,
    jws        TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX consent_changes_consent ON consent_changes (consent_id);

-- Nonces of residents' signed requests: each used once per resident.
CREATE TABLE resident_nonces (
    account_id TEXT NOT NULL,
    nonce      TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, nonce)
);

-- The consent feed services read: ordered by seq (commits are serialized by the ledger
-- head lock, so seq order is commit order).
CREATE TABLE consent_events (
    seq         BIGSERIAL PRIMARY KEY,
    consent_id  TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    consumer_id TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    purpose_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    items       TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX consent_events_consumer ON consent_events (consumer_id, seq);
CREATE INDEX consent_events_provider ON consent_events (provider_id, seq);
CREATE INDEX consent_events_consent ON consent_events (consent_id, seq);

-- Pairwise identifiers the platform has given out, to translate them back.
CREATE TABLE subjects (
    sector     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (sector, subject)
);

CREATE TABLE tickets (
    id               TEXT PRIMARY KEY,
    consumer_id      TEXT NOT NULL,
    provider_id      TEXT NOT NULL,
    account_id       TEXT NOT NULL,
    purpose_id       TEXT NOT NULL,
    items            TEXT NOT NULL,
    basis            TEXT NOT NULL,
    -- For legal-basis tickets: who asked and why (shown to the resident).
    requester        TEXT,
    reason           TEXT,
    issued_at        BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    -- SHA-256 (hex) of the payload, as each side reports it. Never the payload.
    consumer_receipt TEXT,
    provider_receipt TEXT,
    state            TEXT NOT NULL CHECK (state IN ('open', 'completed', 'mismatch', 'missing')),
    updated_at       BIGINT NOT NULL
);
CREATE INDEX tickets_open ON tickets (state, expires_at);
CREATE INDEX tickets_account ON tickets (account_id);

CREATE TABLE alerts (
    seq        BIGSERIAL PRIMARY KEY,
    kind       TEXT NOT NULL,
    service_id TEXT,
    detail     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
