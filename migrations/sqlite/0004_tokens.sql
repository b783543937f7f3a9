-- API tokens (see src/auth.rs). Kept in step with ../postgres/0004_tokens.sql. Only the SHA-256
-- of a token's secret is stored; the token is shown once, when created.
CREATE TABLE api_tokens (
    key_id     TEXT   NOT NULL PRIMARY KEY, -- the public part of the token
    name       TEXT   NOT NULL UNIQUE,
    role       TEXT   NOT NULL CHECK (role IN ('reader', 'analyst', 'ingest', 'admin')),
    hash       TEXT   NOT NULL,            -- SHA-256 of the secret, hex
    created_at BIGINT NOT NULL,
    created_by TEXT   NOT NULL,
    revoked_at BIGINT
);
