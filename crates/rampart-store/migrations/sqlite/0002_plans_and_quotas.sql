-- A consumer's plan: limits that replace a route's (JSON, or NULL for none).
ALTER TABLE consumers ADD COLUMN plan TEXT;

-- Requests counted against quotas, per consumer and period ("d:2026-11-23", "m:2026-11").
CREATE TABLE quota_usage (
    consumer_id TEXT NOT NULL REFERENCES consumers(id),
    period TEXT NOT NULL,
    used BIGINT NOT NULL,
    PRIMARY KEY (consumer_id, period)
);
