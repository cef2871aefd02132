-- The shared tamper-evident audit log (used when instances share this database):
-- entries sequenced here, checkpoints, the verifier keys of every instance, the origin.
CREATE TABLE audit_log (
    idx BIGINT PRIMARY KEY,
    entry BLOB NOT NULL,
    leaf_hash BLOB NOT NULL
);

CREATE TABLE audit_checkpoints (
    size BIGINT PRIMARY KEY,
    note TEXT NOT NULL
);

CREATE TABLE audit_verifier_keys (
    verifier_key TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE audit_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
