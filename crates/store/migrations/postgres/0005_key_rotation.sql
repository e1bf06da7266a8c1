-- Key rotation (ADR 0019). A signing or ledger key signs from activate_at on (the newest
-- such key wins); a signing key leaves the JWKS at retire_at; a ledger key other than the
-- first signs only once its announcement (the handover tree head, JSON) is recorded.
ALTER TABLE platform_keys ADD COLUMN activate_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE platform_keys ADD COLUMN retire_at BIGINT;
ALTER TABLE platform_keys ADD COLUMN announcement TEXT;
UPDATE platform_keys SET activate_at = created_at;
