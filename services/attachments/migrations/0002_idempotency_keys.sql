-- First answers to uploads sent with an Idempotency-Key (shared/idempotency.py): per
-- caller and key, the upload's fingerprint (file name and content), then its answer.
CREATE TABLE attachments.idempotency_keys (
    actor_id    text        NOT NULL,
    key         text        NOT NULL,
    fingerprint text        NOT NULL,
    status      integer,
    body        bytea,
    headers     jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor_id, key)
);
