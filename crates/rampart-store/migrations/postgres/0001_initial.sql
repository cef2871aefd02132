CREATE TABLE consumers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    tenant TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'active',
    version BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    consumer_id TEXT NOT NULL REFERENCES consumers(id),
    name TEXT,
    secret_hash TEXT NOT NULL,
    scopes TEXT NOT NULL DEFAULT '[]',
    expires_at BIGINT,
    last_used_at BIGINT,
    revoked_at BIGINT,
    replaced_by TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX api_keys_consumer ON api_keys(consumer_id);

CREATE TABLE admin_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE audit_events (
    seq BIGSERIAL PRIMARY KEY,
    time BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    resource TEXT NOT NULL,
    outcome TEXT NOT NULL,
    summary TEXT NOT NULL,
    request_id TEXT,
    source_ip TEXT
);
