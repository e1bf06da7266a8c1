-- Residents' data-subject requests (SPEC §9). The detail the resident wrote is sealed with
-- the keyring (associated data: `dsr:<id>`) and forgotten when the account is erased; the
-- rest is the minimal record kept so that the resident can still appeal.
CREATE TABLE dsr_requests (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    type            TEXT NOT NULL CHECK (type IN ('disclosure', 'correction', 'suspension', 'erasure', 'stop_provision', 'resume')),
    status          TEXT NOT NULL CHECK (status IN ('received', 'in_progress', 'completed', 'refused')),
    detail          BYTEA,
    received_at     BIGINT NOT NULL,
    deadline        BIGINT NOT NULL,
    decided_at      BIGINT,
    -- Why it was refused or how it was completed (staff's words, or the platform's).
    decision_reason TEXT,
    -- The staff id that decided, or `platform` for what completes without staff.
    decided_by      TEXT,
    version         BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX dsr_requests_account ON dsr_requests (account_id, received_at);
CREATE INDEX dsr_requests_open ON dsr_requests (status, deadline);
