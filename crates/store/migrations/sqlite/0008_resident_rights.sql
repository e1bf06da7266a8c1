-- Residents' rights (issue 10, SPEC §9): what the resident asked the platform to stop
-- (nothing, 利用停止, 第三者提供の停止), and when the account was erased at their request
-- (its attributes, card and devices are gone; the row stays so that its ledger leaves and
-- requests still have an owner).
ALTER TABLE accounts ADD COLUMN restriction TEXT NOT NULL DEFAULT 'none'
    CHECK (restriction IN ('none', 'suspension', 'stop_provision'));
ALTER TABLE accounts ADD COLUMN erased_at INTEGER;
-- Why a consent event happened when the resident did not sign it (`erasure`: revoked
-- because the resident's account was erased); the consent feed passes it on.
ALTER TABLE consent_events ADD COLUMN reason TEXT;
